// Runs Kusto.Language (Microsoft's KQL parser and semantic analyzer, npm @kusto/language-service-next) for ingestor.provision.kql.
//
// stdin:  {"database": {"name": "...", "tables": [{"name": "T", "columns": [{"name": "c", "type": "string"}]}],
//                       "functions": [{"name": "F", "body": "<KQL query>"}]},
//          "queries": ["...", ...]}
// stdout: [{"errors": [{"code", "severity", "message", "start", "length"}, ...], "columns": [[name, type], ...]}, ...]:
//         each query's error diagnostics, and the columns (name, KQL type) of its result when it is tabular.
// Bad input or a failure: a one-line message on stderr and exit status 1.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
// The package is a Bridge.NET compile: bridge.js defines the global `Bridge` runtime, then the Kusto.Language
// assembly registers the global `Kusto.Language` namespace into it. Neither exports a module.
require("@kusto/language-service-next/bridge.min.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.min.js");

const L = globalThis.Kusto.Language;
const S = L.Symbols;
const TYPES = {
    string: S.ScalarTypes.String,
    int: S.ScalarTypes.Int,
    long: S.ScalarTypes.Long,
    real: S.ScalarTypes.Real,
    bool: S.ScalarTypes.Bool,
    datetime: S.ScalarTypes.DateTime,
    timespan: S.ScalarTypes.TimeSpan,
    dynamic: S.ScalarTypes.Dynamic,
    guid: S.ScalarTypes.Guid,
    decimal: S.ScalarTypes.Decimal,
};

function column(table, { name, type }) {
    const scalar = Object.hasOwn(TYPES, type) ? TYPES[type] : undefined;
    if (scalar === undefined) {
        throw new Error(`table ${table}: column ${name} has type ${JSON.stringify(type)}, not one of ${Object.keys(TYPES)}`);
    }
    // ColumnSymbol(name, type, description, originalColumns, source, examples)
    return new S.ColumnSymbol(name, scalar, null, null, null, null);
}

function globalsFor(database) {
    const members = [];
    for (const table of database.tables ?? []) {
        members.push(new S.TableSymbol.$ctor4(table.name, table.columns.map((c) => column(table.name, c))));
    }
    for (const fn of database.functions ?? []) {
        // FunctionSymbol(name, parameterList, body, description): the body is analyzed where the function is
        // called, so the caller sees the columns (and types) it produces.
        members.push(new S.FunctionSymbol.$ctor16(fn.name, "()", `{ ${fn.body}\n}`, null));
    }
    // DatabaseSymbol(name, members, isOpen): closed, so unknown tables and functions are errors.
    const symbol = new S.DatabaseSymbol.$ctor1(database.name ?? "db", members, false);
    return L.GlobalState.Default.WithDatabase(symbol);
}

function analysis(globals, query) {
    const code = L.KustoCode.ParseAndAnalyze(query, globals);
    const errors = Bridge.toArray(code.GetDiagnostics())
        .filter((d) => d.Severity === L.DiagnosticSeverity.Error)
        .map((d) => ({ code: d.Code, severity: d.Severity, message: d.Message, start: d.Start, length: d.Length }));
    const result = code.ResultType;
    const columns = result instanceof S.TableSymbol ? Bridge.toArray(result.Columns).map((c) => [c.Name, c.Type.Name]) : [];
    return { errors, columns };
}

async function main() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (!Array.isArray(request.queries) || request.queries.some((q) => typeof q !== "string")) {
        throw new Error("`queries` must be a list of strings");
    }
    const globals = globalsFor(request.database ?? {});
    const result = request.queries.map((query) => analysis(globals, query));
    process.stdout.write(JSON.stringify(result));
}

main().catch((error) => {
    process.stderr.write(`kql analyzer: ${String(error?.message ?? error).replace(/\s+/g, " ")}\n`);
    process.exitCode = 1;
});
