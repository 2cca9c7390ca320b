"""`ingestor provision`: the configuration's destinations -> an ARM template that Azure accepts (tables, endpoint,
data collection rules, role assignments, workspace functions) and the ingestor config that uses its deployment.

Modules, lowest first: `arm` (the template's vocabulary and readers), `azure_rules` (Azure's limits, the names
tables store columns under, `check_template`), `workspace_functions` (the functions named after the native tables),
`template` (planning the DCRs, `build_template`), `resolve` (`resolve_config`), `kql` (Kusto.Language through
Node.js, `kql_analyzer/`), `query_check` (`--check-queries`), `cli` (the command, the only I/O). Import from those;
the names below are the package's face.

May import: the shared leaves (config, retention, tables, models, errors); nothing of the runtime.
"""

from ingestor.provision.arm import DCR_TYPE, TABLE_TYPE, resources_of, template_tables
from ingestor.provision.azure_rules import MAX_DCR_NAME_CHARS, check_template
from ingestor.provision.resolve import resolve_config
from ingestor.provision.template import build_template, sent_columns, table_columns

__all__ = [
    "DCR_TYPE",
    "MAX_DCR_NAME_CHARS",
    "TABLE_TYPE",
    "build_template",
    "check_template",
    "resolve_config",
    "resources_of",
    "sent_columns",
    "table_columns",
    "template_tables",
]
