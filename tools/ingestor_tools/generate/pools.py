"""Static vocabulary for the synthetic traffic generator: process images, files, URLs, registry, signers.

Pure data; `world.World` expands the `{placeholder}` templates with its seeded RNG when it builds its pools.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Image:
    """One executable as the sensor reports it (FileName, FolderPath, version info)."""

    name: str
    path: str
    company: str | None = None
    product: str | None = None
    description: str | None = None
    version: str | None = None
    size: int = 200_000
    system: bool = False  # runs as SYSTEM/root rather than as the signed-in user
    cmdlines: tuple[str, ...] = ()  # templates; empty means the quoted path alone
    weight: float = 1.0  # how often it initiates events
    spawn: float = 1.0  # how often it is the child in a ProcessCreated event


MS = "Microsoft Corporation"
WINOS = "Microsoft\u00ae Windows\u00ae Operating System"
WINVER = "10.0.26100.{build}"
S32 = "C:\\Windows\\System32\\"
CHROMIUM_FLAGS = (
    "--type={ctype} --string-annotations --video-capture-use-gpu-memory-buffer --lang=en-US "
    "--device-scale-factor=1 --num-raster-threads=4 --enable-main-frame-before-activation "
    "--renderer-client-id={n} --time-ticks-at-unix-epoch=-{epoch} --launch-time-ticks={ticks} "
    "--field-trial-handle={n},i,{big},{big},262144 "
    "--enable-features={features} --disable-features={features} --variations-seed-version /prefetch:1"
)

WINDOWS_IMAGES: tuple[Image, ...] = (
    Image(
        "svchost.exe",
        S32 + "svchost.exe",
        MS,
        WINOS,
        "Host Process for Windows Services",
        WINVER,
        79_920,
        True,
        (
            "C:\\Windows\\system32\\svchost.exe -k {svc} -p",
            "C:\\Windows\\System32\\svchost.exe -k {svc} -p -s {svcname}",
        ),
        9.0,
        0.5,
    ),
    Image(
        "MsSense.exe",
        "C:\\Program Files\\Windows Defender Advanced Threat Protection\\MsSense.exe",
        MS,
        WINOS,
        "Windows Defender Advanced Threat Protection Service Executable",
        "10.8760.26100.{build}",
        5_391_232,
        True,
        ('"MsSense.exe"',),
        4.0,
        0.1,
    ),
    Image(
        "MsMpEng.exe",
        "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.26070.6-0\\MsMpEng.exe",
        MS,
        WINOS,
        "Antimalware Service Executable",
        "4.18.26070.6",
        291_360,
        True,
        ('"MsMpEng.exe"',),
        5.0,
        0.05,
    ),
    Image(
        "SenseIR.exe",
        "C:\\Program Files\\Windows Defender Advanced Threat Protection\\SenseIR.exe",
        MS,
        WINOS,
        "Windows Defender Advanced Threat Protection Automated Investigation",
        "10.8760.26100.{build}",
        2_112_000,
        True,
        ('"SenseIR.exe" "OnlineSenseIR" "{hex8}" "{guid}"',),
        1.0,
        0.3,
    ),
    Image(
        "powershell.exe",
        S32 + "WindowsPowerShell\\v1.0\\powershell.exe",
        MS,
        WINOS,
        "Windows PowerShell",
        "10.0.26100.{build}",
        454_656,
        False,
        (
            'powershell.exe -ExecutionPolicy AllSigned -NoProfile -NonInteractive -Command "& {{$OutputEncoding'
            " = [Console]::OutputEncoding =[System.Text.Encoding]::UTF8;$scriptFileStream = [System.IO.File]::"
            "Open('C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\DataCollection\\"
            "{n}.{big}.0.{big}-{hex40}\\{guid}.ps1', [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read,"
            " [System.IO.FileShare]::Read);$calculatedHash = Microsoft.PowerShell.Utility\\Get-FileHash "
            "'C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\DataCollection\\{n}.{big}"
            ".0.{big}-{hex40}\\{guid}.ps1' -Algorithm SHA256;if (!($calculatedHash.Hash -eq '{hex64}')) "
            "{{ exit 323;}}; . 'C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\"
            "DataCollection\\{n}.{big}.0.{big}-{hex40}\\{guid}.ps1' }}\"",
            "powershell.exe -NoProfile -ExecutionPolicy Bypass -EncodedCommand {encoded}",
            '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -NoLogo -NonInteractive '
            "-WindowStyle Hidden -EncodedCommand {encoded}",
            'powershell.exe -ExecutionPolicy Bypass -File "C:\\ProgramData\\{vendor}\\scripts\\{script}.ps1"',
            '"powershell.exe" -Command "Get-WmiObject -Class Win32_{wmi} | Select-Object -Property * | '
            'ConvertTo-Json -Compress"',
        ),
        3.0,
        3.0,
    ),
    Image(
        "cmd.exe",
        S32 + "cmd.exe",
        MS,
        WINOS,
        "Windows Command Processor",
        "10.0.26100.{build}",
        339_968,
        False,
        (
            'C:\\Windows\\system32\\cmd.exe /c "{script}.bat"',
            "cmd.exe /c ver",
            'cmd /c "whoami /all > C:\\Windows\\Temp\\{hex8}.txt"',
            'C:\\Windows\\system32\\cmd.exe /d /c "C:\\Program Files\\{vendor}\\bin\\{script}.cmd" --silent',
        ),
        2.0,
        2.0,
    ),
    Image(
        "conhost.exe",
        S32 + "conhost.exe",
        MS,
        WINOS,
        "Console Window Host",
        "10.0.26100.{build}",
        1_018_880,
        False,
        ("\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",),
        0.3,
        2.0,
    ),
    Image(
        "explorer.exe",
        "C:\\Windows\\explorer.exe",
        MS,
        WINOS,
        "Windows Explorer",
        "10.0.26100.{build}",
        5_603_088,
        False,
        ("C:\\Windows\\Explorer.EXE",),
        4.0,
        0.1,
    ),
    Image(
        "chrome.exe",
        "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
        "Google LLC",
        "Google Chrome",
        "Google Chrome",
        "138.0.7204.{n}",
        3_171_360,
        False,
        (
            '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" ' + CHROMIUM_FLAGS,
            '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --profile-directory=Default',
            '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --single-argument {url}',
        ),
        6.0,
        3.0,
    ),
    Image(
        "msedge.exe",
        "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe",
        MS,
        "Microsoft Edge",
        "Microsoft Edge",
        "138.0.3351.{n}",
        4_184_640,
        False,
        (
            '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe" ' + CHROMIUM_FLAGS,
            '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe" --no-startup-window '
            "--win-session-start",
        ),
        5.0,
        3.0,
    ),
    Image(
        "ms-teams.exe",
        "C:\\Program Files\\WindowsApps\\MSTeams_25153.1010.3727.5483_x64__8wekyb3d8bbwe\\ms-teams.exe",
        MS,
        "Microsoft Teams",
        "Microsoft Teams",
        "25153.1010.3727.5483",
        1_321_288,
        False,
        (
            '"ms-teams.exe" msteams:system-initiated',
            '"C:\\Program Files\\WindowsApps\\MSTeams_25153.1010.3727.5483_x64__8wekyb3d8bbwe\\ms-teams.exe" '
            + CHROMIUM_FLAGS,
        ),
        2.5,
        0.8,
    ),
    Image(
        "OUTLOOK.EXE",
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
        MS,
        "Microsoft Outlook",
        "Microsoft Outlook",
        "16.0.18925.{n}",
        46_152_080,
        False,
        (
            '"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE" ',
            '"C:\\Program Files\\Microsoft Office\\Root\\Office16\\OUTLOOK.EXE" /recycle',
        ),
        2.0,
        0.5,
    ),
    Image(
        "WINWORD.EXE",
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
        MS,
        "Microsoft Office",
        "Microsoft Word",
        "16.0.18925.{n}",
        2_087_312,
        False,
        (
            '"C:\\Program Files\\Microsoft Office\\Root\\Office16\\WINWORD.EXE" /n "C:\\Users\\{user}\\'
            'Documents\\{doc}.docx" /o ""',
        ),
        1.0,
        0.6,
    ),
    Image(
        "EXCEL.EXE",
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE",
        MS,
        "Microsoft Office",
        "Microsoft Excel",
        "16.0.18925.{n}",
        72_355_760,
        False,
        (
            '"C:\\Program Files\\Microsoft Office\\Root\\Office16\\EXCEL.EXE" "C:\\Users\\{user}\\Downloads\\'
            '{doc}.xlsx"',
        ),
        1.0,
        0.5,
    ),
    Image(
        "OneDrive.exe",
        "C:\\Program Files\\Microsoft OneDrive\\OneDrive.exe",
        MS,
        "Microsoft OneDrive",
        "Microsoft OneDrive",
        "25.120.0622.0002",
        3_752_272,
        False,
        ('"C:\\Program Files\\Microsoft OneDrive\\OneDrive.exe" /background',),
        2.0,
        0.3,
    ),
    Image(
        "services.exe",
        S32 + "services.exe",
        MS,
        WINOS,
        "Services and Controller app",
        "10.0.26100.{build}",
        739_600,
        True,
        ("C:\\Windows\\system32\\services.exe",),
        1.0,
        0.0,
    ),
    Image(
        "lsass.exe",
        S32 + "lsass.exe",
        MS,
        WINOS,
        "Local Security Authority Process",
        "10.0.26100.{build}",
        59_360,
        True,
        ("C:\\Windows\\system32\\lsass.exe",),
        1.5,
        0.0,
    ),
    Image(
        "WmiPrvSE.exe",
        S32 + "wbem\\WmiPrvSE.exe",
        MS,
        WINOS,
        "WMI Provider Host",
        "10.0.26100.{build}",
        577_536,
        True,
        (
            "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
            "C:\\Windows\\system32\\wbem\\wmiprvse.exe -Embedding",
        ),
        1.5,
        1.0,
    ),
    Image(
        "taskhostw.exe",
        S32 + "taskhostw.exe",
        MS,
        WINOS,
        "Host Process for Windows Tasks",
        "10.0.26100.{build}",
        114_688,
        False,
        ("taskhostw.exe {{{guid}}}", "taskhostw.exe"),
        0.8,
        1.0,
    ),
    Image(
        "rundll32.exe",
        S32 + "rundll32.exe",
        MS,
        WINOS,
        "Windows host process (Rundll32)",
        "10.0.26100.{build}",
        71_680,
        False,
        (
            "C:\\Windows\\system32\\rundll32.exe C:\\Windows\\system32\\{dll},{export}",
            '"C:\\Windows\\system32\\rundll32.exe" shell32.dll,SHCreateLocalServerRunDll {{{guid}}} -Embedding',
        ),
        0.6,
        1.0,
    ),
    Image(
        "msiexec.exe",
        S32 + "msiexec.exe",
        MS,
        WINOS,
        "Windows\u00ae installer",
        "5.0.26100.{build}",
        69_632,
        True,
        (
            "C:\\Windows\\system32\\msiexec.exe /V",
            "C:\\Windows\\System32\\MsiExec.exe -Embedding {hex32} E Global\\MSI0000",
            'msiexec.exe /i "C:\\Windows\\Temp\\{vendor}Setup.msi" /qn',
        ),
        0.8,
        0.8,
    ),
    Image(
        "sdbinst.exe",
        S32 + "sdbinst.exe",
        MS,
        WINOS,
        "Application Compatibility Database Installer",
        "10.0.26100.{build}",
        299_008,
        True,
        ("sdbinst.exe -m -bg",),
        0.2,
        0.3,
    ),
    Image(
        "TiWorker.exe",
        "C:\\Windows\\WinSxS\\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_"
        "10.0.26100.{build}_none_{hex16}\\TiWorker.exe",
        MS,
        WINOS,
        "Windows Modules Installer Worker",
        "10.0.26100.{build}",
        231_424,
        True,
        (
            "C:\\Windows\\winsxs\\amd64_microsoft-windows-servicingstack_"
            "31bf3856ad364e35_10.0.26100.{build}_none_{hex16}\\TiWorker.exe"
            " -Embedding",
        ),
        1.0,
        0.2,
    ),
    Image(
        "SearchIndexer.exe",
        S32 + "SearchIndexer.exe",
        MS,
        WINOS,
        "Microsoft Windows Search Indexer",
        "7.0.26100.{build}",
        1_018_880,
        True,
        ("C:\\Windows\\system32\\SearchIndexer.exe /Embedding",),
        1.0,
        0.1,
    ),
    Image(
        "RuntimeBroker.exe",
        S32 + "RuntimeBroker.exe",
        MS,
        WINOS,
        "Runtime Broker",
        "10.0.26100.{build}",
        151_552,
        False,
        ("C:\\Windows\\System32\\RuntimeBroker.exe -Embedding",),
        1.0,
        1.0,
    ),
    Image(
        "Code.exe",
        "C:\\Users\\{user}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe",
        MS,
        "Visual Studio Code",
        "Visual Studio Code",
        "1.102.1",
        185_146_704,
        False,
        ('"C:\\Users\\{user}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe" ' + CHROMIUM_FLAGS,),
        1.0,
        0.5,
    ),
    Image(
        "git.exe",
        "C:\\Program Files\\Git\\cmd\\git.exe",
        "The Git Development Community",
        "Git",
        "Git",
        "2.50.1.1",
        45_600,
        False,
        (
            "git.exe fetch --all --prune",
            "git status -z -uall",
            "git.exe -c core.quotepath=false log --format=%H -n 50 {hex40}",
        ),
        0.5,
        1.0,
    ),
    Image(
        "python.exe",
        "C:\\Users\\{user}\\AppData\\Local\\Programs\\Python\\Python312\\python.exe",
        "Python Software Foundation",
        "Python",
        "Python",
        "3.12.10",
        103_192,
        False,
        (
            'python.exe "C:\\Users\\{user}\\source\\repos\\{script}\\main.py" --config config.yaml',
            "python.exe -m pip install --upgrade {pkg}",
        ),
        0.4,
        0.5,
    ),
    Image(
        "sqlservr.exe",
        "C:\\Program Files\\Microsoft SQL Server\\MSSQL16.MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe",
        MS,
        "Microsoft SQL Server",
        "SQL Server Windows NT - 64 Bit",
        "2022.160.4195.2",
        491_144,
        True,
        ('"C:\\Program Files\\Microsoft SQL Server\\MSSQL16.MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe" -sMSSQLSERVER',),
        1.0,
        0.0,
    ),
    Image(
        "w3wp.exe",
        "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
        MS,
        "Internet Information Services",
        "IIS Worker Process",
        "10.0.26100.{build}",
        30_720,
        True,
        (
            'c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "{script}AppPool" -v "v4.0" -l "webengine4.dll" -a '
            '\\\\.\\pipe\\iisipm{guid} -h "C:\\inetpub\\temp\\apppools\\{script}AppPool\\{script}AppPool.config" '
            '-w "" -m 0 -t 20',
        ),
        1.0,
        0.2,
    ),
    Image(
        "dllhost.exe",
        S32 + "dllhost.exe",
        MS,
        WINOS,
        "COM Surrogate",
        "10.0.26100.{build}",
        21_312,
        False,
        ("C:\\Windows\\system32\\DllHost.exe /Processid:{{{guid}}}",),
        0.6,
        1.5,
    ),
    Image(
        "CompatTelRunner.exe",
        S32 + "CompatTelRunner.exe",
        MS,
        WINOS,
        "Microsoft Compatibility Telemetry",
        "10.0.26100.{build}",
        204_088,
        True,
        ("C:\\Windows\\system32\\compattelrunner.exe -m:appraiser.dll -f:DoScheduledTelemetryRun -cv:{b64short}.1",),
        0.5,
        0.5,
    ),
)

MAC_IMAGES: tuple[Image, ...] = (
    Image(
        "launchd",
        "/sbin/launchd",
        "(APPLE)",
        system=True,
        size=1_040_400,
        cmdlines=("/sbin/launchd",),
        weight=1.0,
        spawn=0.0,
    ),
    Image("xpcproxy", "/usr/libexec/xpcproxy", "(APPLE)", system=True, size=205_136, weight=0.5, spawn=1.0),
    Image(
        "python3.9",
        "/Library/Developer/CommandLineTools/Library/Frameworks/Python3.framework/Versions/3.9/bin/python3.9",
        "(APPLE)",
        system=True,
        size=53_200,
        cmdlines=(
            '/Library/Developer/CommandLineTools/usr/bin/python3 "/Applications/Microsoft Defender.app/'
            'Contents/MacOS/wdavdaemon_enterprise.app/Contents/Resources/Scripts/{script}.py" '
            "--ScriptName {script}.py --id {script}V2",
        ),
        weight=1.0,
        spawn=1.0,
    ),
    Image(
        "wdavdaemon",
        "/Library/Application Support/Microsoft/Defender/wdavdaemon",
        "UBF8T346G9",
        system=True,
        size=6_204_560,
        cmdlines=(
            "/Library/Application Support/Microsoft/Defender/wdavdaemon",
            "/Library/Application Support/Microsoft/Defender/wdavdaemon unprivileged",
        ),
        weight=4.0,
        spawn=0.2,
    ),
    Image(
        "Google Chrome Helper",
        "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework."
        "framework/Versions/138.0.7204.101/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper",
        "EQHXZ8M8AV",
        size=2_431_584,
        cmdlines=(
            '"/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/'
            'Versions/138.0.7204.101/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper"'
            " " + CHROMIUM_FLAGS,
        ),
        weight=5.0,
        spawn=3.0,
    ),
    Image(
        "microsoft update assistant",
        "/Library/Application Support/Microsoft/MAU2.0/Microsoft AutoUpdate.app/"
        "Contents/MacOS/Microsoft Update Assistant.app/Contents/MacOS/Microsoft Update Assistant",
        "UBF8T346G9",
        size=3_376_912,
        cmdlines=(
            '"/Library/Application Support/Microsoft/MAU2.0/Microsoft AutoUpdate.app/'
            "Contents/MacOS/Microsoft Update Assistant.app/Contents/MacOS/Microsoft Update"
            ' Assistant" --launchByAgent',
        ),
        weight=1.0,
        spawn=0.5,
    ),
    Image(
        "zsh",
        "/bin/zsh",
        "(APPLE)",
        size=1_361_200,
        cmdlines=("-zsh", "/bin/zsh -il", "/bin/zsh -c {shcmd}"),
        weight=1.5,
        spawn=2.0,
    ),
    Image(
        "mdworker_shared",
        "/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/"
        "Versions/A/Support/mdworker_shared",
        "(APPLE)",
        size=418_640,
        cmdlines=(
            "/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/Versions/A/"
            "Support/mdworker_shared -s mdworker -c MDSImporterWorker -m com.apple.mdworker.shared",
        ),
        weight=1.5,
        spawn=1.5,
    ),
    Image(
        "ctkahp",
        "/System/Library/Frameworks/CryptoTokenKit.framework/ctkahp.bundle/Contents/MacOS/ctkahp",
        "(APPLE)",
        size=968_384,
        cmdlines=("/System/Library/Frameworks/CryptoTokenKit.framework/ctkahp.bundle/Contents/MacOS/ctkahp",),
        weight=0.3,
        spawn=0.3,
    ),
    Image(
        "Slack Helper",
        "/Applications/Slack.app/Contents/Frameworks/Slack Helper.app/Contents/MacOS/Slack Helper",
        "BQR82RBBHL",
        size=1_190_416,
        cmdlines=(
            '"/Applications/Slack.app/Contents/Frameworks/Slack Helper.app/Contents/MacOS/Slack Helper" '
            + CHROMIUM_FLAGS,
        ),
        weight=2.0,
        spawn=1.0,
    ),
    Image(
        "curl",
        "/usr/bin/curl",
        "(APPLE)",
        size=358_208,
        cmdlines=("curl -fsSL {url}", "curl -s -o /dev/null -w %{{http_code}} {url}"),
        weight=0.3,
        spawn=1.0,
    ),
    Image(
        "softwareupdated",
        "/System/Library/PrivateFrameworks/SoftwareUpdate.framework/Versions/A/Resources/softwareupdated",
        "(APPLE)",
        system=True,
        size=2_785_072,
        weight=0.5,
        spawn=0.2,
    ),
)

LINUX_IMAGES: tuple[Image, ...] = (
    Image(
        "systemd",
        "/usr/lib/systemd/systemd",
        system=True,
        size=1_854_416,
        cmdlines=("/sbin/init splash", "/usr/lib/systemd/systemd --user"),
        weight=1.0,
        spawn=0.1,
    ),
    Image(
        "sshd",
        "/usr/sbin/sshd",
        system=True,
        size=921_480,
        cmdlines=("sshd: {user} [priv]", "/usr/sbin/sshd -D"),
        weight=1.5,
        spawn=1.0,
    ),
    Image(
        "bash",
        "/usr/bin/bash",
        size=1_446_024,
        cmdlines=("-bash", "/bin/bash -c {shcmd}", "bash /opt/{vendor}/bin/{script}.sh"),
        weight=1.5,
        spawn=3.0,
    ),
    Image(
        "python3.12",
        "/usr/bin/python3.12",
        size=8_019_136,
        cmdlines=("/usr/bin/python3 /opt/{vendor}/{script}.py --interval 60", "python3 -m pip install {pkg}"),
        weight=1.0,
        spawn=1.0,
    ),
    Image(
        "wdavdaemon",
        "/opt/microsoft/mdatp/sbin/wdavdaemon",
        system=True,
        size=9_410_488,
        cmdlines=(
            "/opt/microsoft/mdatp/sbin/wdavdaemon",
            "/opt/microsoft/mdatp/sbin/wdavdaemon edr 14 29 --log_level info",
        ),
        weight=4.0,
        spawn=0.2,
    ),
    Image(
        "dockerd",
        "/usr/bin/dockerd",
        system=True,
        size=88_123_504,
        cmdlines=("/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",),
        weight=1.5,
        spawn=0.1,
    ),
    Image(
        "java",
        "/usr/lib/jvm/java-21-openjdk-amd64/bin/java",
        size=14_448,
        cmdlines=(
            "/usr/lib/jvm/java-21-openjdk-amd64/bin/java -Xms2g -Xmx2g -XX:+UseG1GC "
            "-Djava.security.egd=file:/dev/./urandom -Dspring.profiles.active=prod "
            "-jar /opt/{vendor}/{script}.jar --server.port={port}",
        ),
        weight=2.0,
        spawn=0.3,
    ),
    Image(
        "nginx",
        "/usr/sbin/nginx",
        system=True,
        size=1_366_456,
        cmdlines=("nginx: worker process", "nginx: master process /usr/sbin/nginx"),
        weight=2.0,
        spawn=0.2,
    ),
    Image(
        "cron", "/usr/sbin/cron", system=True, size=64_424, cmdlines=("/usr/sbin/cron -f -P",), weight=0.5, spawn=0.5
    ),
    Image("curl", "/usr/bin/curl", size=260_328, cmdlines=("curl -fsSL {url}",), weight=0.3, spawn=1.0),
)

WINDOWS_PARENTS = (
    "services.exe",
    "explorer.exe",
    "svchost.exe",
    "userinit.exe",
    "wininit.exe",
    "SenseIR.exe",
    "MsSense.exe",
    "sihost.exe",
    "powershell.exe",
    "cmd.exe",
    "WmiPrvSE.exe",
)
MAC_PARENTS = ("launchd", "xpcproxy", "zsh", "login", "python3.9", "wdavdaemon")
LINUX_PARENTS = ("systemd", "sshd", "bash", "containerd-shim-runc-v2", "cron", "sudo")

DLLS = (
    "ntdll.dll",
    "kernel32.dll",
    "KernelBase.dll",
    "advapi32.dll",
    "user32.dll",
    "gdi32.dll",
    "ole32.dll",
    "combase.dll",
    "rpcrt4.dll",
    "sechost.dll",
    "bcrypt.dll",
    "crypt32.dll",
    "wintrust.dll",
    "samlib.dll",
    "netapi32.dll",
    "winhttp.dll",
    "wininet.dll",
    "dnsapi.dll",
    "ws2_32.dll",
    "mswsock.dll",
    "iphlpapi.dll",
    "amsi.dll",
    "clr.dll",
    "mscoree.dll",
    "clrjit.dll",
    "System.Management.Automation.ni.dll",
    "dbghelp.dll",
    "vaultcli.dll",
    "wldp.dll",
    "taskschd.dll",
    "wbemcomn.dll",
    "fastprox.dll",
    "msi.dll",
    "schannel.dll",
    "ncrypt.dll",
    "cryptdll.dll",
    "kerberos.dll",
    "msv1_0.dll",
    "userenv.dll",
    "profapi.dll",
)
DLL_FOLDERS = (
    "C:\\Windows\\System32\\",
    "C:\\Windows\\System32\\",
    "C:\\Windows\\System32\\",
    "C:\\Windows\\SysWOW64\\",
    "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\",
    "C:\\Windows\\assembly\\NativeImages_v4.0.30319_64\\System.Manaa57fc8cc#\\{hex32}\\",
    "C:\\Program Files\\Google\\Chrome\\Application\\138.0.7204.101\\",
)

DOC_NAMES = (
    "Q3 Budget Review",
    "invoice_{n}",
    "Meeting notes {n}",
    "Project Plan v{n}",
    "expense-report-{n}",
    "Architecture Overview",
    "Onboarding Checklist",
    "Sales Forecast FY26",
    "Contract_{hex8}",
    "scan_{big}",
    "Screenshot 2026-07-{n}",
    "release-notes",
    "benefits-summary-2026",
    "roadmap_draft",
)
DOC_EXTS = (".docx", ".xlsx", ".pdf", ".pptx", ".txt", ".csv", ".png", ".zip", ".msg", ".one")
WIN_FILE_FOLDERS = (
    "C:\\Users\\{user}\\Downloads\\",
    "C:\\Users\\{user}\\Documents\\",
    "C:\\Users\\{user}\\Desktop\\",
    "C:\\Users\\{user}\\AppData\\Local\\Temp\\",
    "C:\\Users\\{user}\\OneDrive - {org}\\Documents\\{proj}\\",
    "C:\\Users\\{user}\\AppData\\Local\\Microsoft\\Outlook\\RoamCache\\",
    "C:\\Users\\{user}\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\Cache\\Cache_Data\\",
    "C:\\Windows\\Temp\\",
    "C:\\Windows\\SoftwareDistribution\\Download\\{hex32}\\",
    "C:\\ProgramData\\Microsoft\\Windows Defender\\Scans\\History\\Service\\",
    "C:\\Windows\\apppatch\\MergeSdbFiles\\",
    "C:\\ProgramData\\{vendor}\\logs\\",
)
MAC_FILE_FOLDERS = (
    "/Users/{user}/Downloads/",
    "/Users/{user}/Documents/",
    "/Users/{user}/Library/Caches/com.apple.Safari/",
    "/private/var/folders/{b64short}/T/",
    "/Library/Logs/Microsoft/mdatp/",
    "/Users/{user}/Library/Application Support/Slack/Cache/",
)
LINUX_FILE_FOLDERS = (
    "/tmp/",  # noqa: S108 - a path string for records, not a file this code opens
    "/var/log/",
    "/var/lib/docker/overlay2/{hex64}/diff/tmp/",
    "/home/{user}/",
    "/etc/{vendor}/",
    "/opt/{vendor}/data/",
    "/var/cache/apt/archives/",
)
TEMP_NAMES = ("~DF{hex8}.TMP", "{hex16}.tmp", "{guid}.tmp", "tmp{hex8}", "{n}.log", "{hex8}.etl", "f_{n}")

DOMAINS = (
    "login.microsoftonline.com",
    "graph.microsoft.com",
    "outlook.office365.com",
    "teams.microsoft.com",
    "v10.events.data.microsoft.com",
    "settings-win.data.microsoft.com",
    "wdcp.microsoft.com",
    "winatp-gw-eus.microsoft.com",
    "unitedstates.x.cp.wd.microsoft.com",
    "go.microsoft.com",
    "www.google.com",
    "clients2.google.com",
    "update.googleapis.com",
    "github.com",
    "objects.githubusercontent.com",
    "api.github.com",
    "slack.com",
    "edgeapi.slack.com",
    "zoom.us",
    "cdn.jsdelivr.net",
    "www.linkedin.com",
    "s3.amazonaws.com",
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "ocsp.digicert.com",
    "crl3.digicert.com",
    "ctldl.windowsupdate.com",
    "officecdn.microsoft.com",
    "{org}.sharepoint.com",
    "{org}-my.sharepoint.com",
    "www.bing.com",
)
URL_PATHS = (
    "/",
    "/common/oauth2/v2.0/token",
    "/v1.0/me/messages?$top=50&$select=subject,from,receivedDateTime",
    "/OneCollector/1.0/",
    "/api/v2/client/metrics",
    "/download/{hex8}/setup.exe",
    "/{org}/{proj}/releases/download/v{n}.{n}.{n}/{proj}-{n}.tar.gz",
    "/search?q={word}+{word}&form=QBLH&sp=-1&lq=0&pq={word}&sc=10-12&qs=n&sk=&cvid={hex32}",
    "/packages/{hex8}/{pkg}-{n}.{n}.{n}-py3-none-any.whl",
    "/sites/{proj}/Shared%20Documents/{word}.docx?web=1",
    "/pki/crl/products/MicCodSigPCA2011_2011-07-08.crl",
    "/gh/{word}/{word}@{n}.{n}/dist/{word}.min.js",
    "/c/{n}/{word}.json?token={b64long}",
)
WORDS = (
    "report",
    "config",
    "update",
    "status",
    "alpha",
    "beta",
    "invoice",
    "release",
    "metrics",
    "health",
    "team",
    "roadmap",
    "payroll",
    "backup",
    "sync",
    "cloud",
    "agent",
    "deploy",
    "index",
    "bundle",
)
PKGS = ("requests", "azure-identity", "boto3", "numpy", "pandas", "urllib3", "cryptography", "setuptools")
VENDORS = ("Contoso", "Tanium", "Qualys", "Splunk", "Zscaler", "Datadog", "Citrix", "Dell", "Intune", "Jamf")
SCRIPTS = (
    "inventory",
    "healthcheck",
    "open_files",
    "collect_logs",
    "rotate",
    "backup",
    "sync_agent",
    "deploy",
    "cleanup",
    "log4j_handlers",
    "patch_status",
    "cert_renewal",
)
PROJECTS = ("atlas", "phoenix", "orion", "helios", "nimbus", "quartz", "zephyr")
SERVICES = (
    "netsvcs",
    "LocalServiceNetworkRestricted",
    "NetworkService",
    "LocalSystemNetworkRestricted",
    "DcomLaunch",
    "RPCSS",
    "UnistackSvcGroup",
    "wusvcs",
    "appmodel",
)
SERVICE_NAMES = (
    "Schedule",
    "BITS",
    "wuauserv",
    "DiagTrack",
    "CryptSvc",
    "Dnscache",
    "WinHttpAutoProxySvc",
    "LanmanWorkstation",
    "EventLog",
    "UsoSvc",
    "TokenBroker",
    "CDPSvc",
)
WMI_CLASSES = ("OperatingSystem", "ComputerSystem", "Process", "Service", "LogicalDisk", "QuickFixEngineering")
EXPORTS = ("Control_RunDLL", "ProcessIdleTasks", "PrintUIEntry", "ShOpenVerbApplication", "LockWorkStation")
CHROMIUM_FEATURES = (
    "BackForwardCache",
    "CalculateNativeWinOcclusion",
    "DnsOverHttpsUpgrade",
    "PartitionedCookies",
    "ProcessPerSiteUpToMainFrameThreshold",
    "RendererCodeIntegrity",
    "SpareRendererForSitePerProcess",
    "ThirdPartyStoragePartitioning",
    "UseEcoQoSForBackgroundProcess",
    "WinDelaySpellcheckServiceInit",
    "msEdgeSplitScreen",
    "msAllowAutoplayForBackgroundTabs",
    "WebRtcAllowInputVolumeAdjustment",
)
SHELL_COMMANDS = (
    "'ps -axo pid,ppid,user,command'",
    "'system_profiler SPHardwareDataType'",
    "'df -h /'",
    "'launchctl list | grep -i microsoft'",
    "'uptime'",
    "'id -Gn'",
    "'cat /etc/os-release'",
)
PS_STATEMENTS = (
    "$ErrorActionPreference = 'SilentlyContinue'",
    "Get-ChildItem -Path C:\\Users -Recurse -Include *.log | Where-Object {{ $_.LastWriteTime -lt (Get-Date)"
    ".AddDays(-30) }} | Remove-Item -Force",
    "$svc = Get-Service -Name '{svcname}'; if ($svc.Status -ne 'Running') {{ Start-Service -Name '{svcname}' }}",
    "Invoke-WebRequest -Uri 'https://{domain}/api/v2/client/metrics' -Method Post -Body ($payload | ConvertTo-Json"
    " -Depth 5) -ContentType 'application/json' -UseBasicParsing",
    "$hotfixes = Get-HotFix | Sort-Object -Property InstalledOn -Descending | Select-Object -First 20",
    "Get-ItemProperty -Path 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*' | Select-Object "
    "DisplayName, DisplayVersion, Publisher, InstallDate",
    "$cert = Get-ChildItem Cert:\\LocalMachine\\My | Where-Object {{ $_.NotAfter -lt (Get-Date).AddDays(30) }}",
    "Set-ItemProperty -Path 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\DataCollection' -Name LastUpdate "
    "-Value '{guid}'",
    "foreach ($p in Get-Process) {{ $report += [pscustomobject]@{{ Name = $p.Name; Id = $p.Id; CPU = $p.CPU; "
    "WS = $p.WorkingSet64 }} }}",
    "$bytes = [System.Convert]::FromBase64String('{b64long}')",
    'Write-Output "Completed {script} on $env:COMPUTERNAME at $(Get-Date -Format o)"',
)

REGISTRY_KEYS: tuple[tuple[str, str, str], ...] = (
    ("HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows\\DataCollection", "LastUpdate", "String"),
    ("HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\{svcname}", "Start", "Dword"),
    (
        "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\bam\\State\\UserSettings\\{sid}",
        "\\Device\\HarddiskVolume3\\Program Files\\{vendor}\\{script}.exe",
        "Binary",
    ),
    (
        "HKEY_CURRENT_USER\\S-1-5-21-{n}-{n}-{n}-{n}\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Explorer\\"
        "RecentDocs\\{ext}",
        "MRUListEx",
        "Binary",
    ),
    ("HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "{vendor}Agent", "String"),
    (
        "HKEY_CURRENT_USER\\S-1-5-21-{n}-{n}-{n}-{n}\\SOFTWARE\\Microsoft\\Office\\16.0\\Common\\Roaming\\Identities",
        "ADUserName",
        "String",
    ),
    ("HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows Defender\\Features", "TamperProtection", "Dword"),
    (
        "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Schedule\\TaskCache\\Tree\\Microsoft\\"
        "Windows\\UpdateOrchestrator\\{script}",
        "Id",
        "String",
    ),
    ("HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\Session Manager\\PendingFileRenameOperations", "", "MultiSz"),
    (
        "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\RebootRequired",
        "{guid}",
        "Dword",
    ),
    ("HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Google\\Update\\ClientState\\{{{guid}}}", "LastCheckSuccess", "Qword"),
)
REGISTRY_ACTIONS = (
    "RegistryValueSet",
    "RegistryValueSet",
    "RegistryValueSet",
    "RegistryKeyCreated",
    "RegistryValueDeleted",
    "RegistryKeyDeleted",
)

# (Signer, Issuer, root is Microsoft); cert info comes from Windows and macOS devices.
WINDOWS_SIGNERS: tuple[tuple[str, str, bool], ...] = (
    ("Microsoft Windows", "Microsoft Windows Production PCA 2011", True),
    ("Microsoft Corporation", "Microsoft Code Signing PCA 2011", True),
    ("Microsoft Windows Publisher", "Microsoft Windows Production PCA 2011", True),
    ("Google LLC", "DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1", False),
    ("Mozilla Corporation", "DigiCert SHA2 Assured ID Code Signing CA", False),
    ("Adobe Inc.", "DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1", False),
    ("Zoom Video Communications, Inc.", "DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1", False),
    ("Python Software Foundation", "DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1", False),
    ("Dell Inc", "DigiCert SHA2 Assured ID Code Signing CA", False),
    ("Intel(R) pGFX", "Intel External Issuing CA 7B", False),
    ("NVIDIA Corporation", "DigiCert High Assurance Code Signing CA-1", False),
)
MAC_SIGNERS: tuple[tuple[str, str, bool], ...] = (
    ("Developer ID Application: Google LLC (EQHXZ8M8AV)", "Developer ID Certification Authority", False),
    ("Developer ID Application: Microsoft Corporation (UBF8T346G9)", "Developer ID Certification Authority", False),
    ("Developer ID Application: Slack Technologies, Inc. (BQR82RBBHL)", "Developer ID Certification Authority", False),
    ("Software Signing", "Apple Code Signing Certification Authority", False),
    ("Apple Mac OS Application Signing", "Apple Worldwide Developer Relations Certification Authority", False),
)
CRL_URLS = (
    '["http://crl.microsoft.com/pki/crl/products/MicCodSigPCA2011_2011-07-08.crl"]',
    '["http://crl3.digicert.com/DigiCertTrustedG4CodeSigningRSA4096SHA3842021CA1.crl",'
    '"http://crl4.digicert.com/DigiCertTrustedG4CodeSigningRSA4096SHA3842021CA1.crl"]',
    "[]",
    "[]",
)

ORGS = ("contoso", "fabrikam", "northwind", "adatum", "wingtiptoys", "tailspin", "litware")
FIRST_NAMES = (
    "alice",
    "bob",
    "carol",
    "dan",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rob",
    "sybil",
    "trent",
    "victor",
    "walter",
    "yasmin",
)
LAST_NAMES = ("smith", "jones", "garcia", "chen", "patel", "nguyen", "kowalski", "okafor", "muller", "rossi")
WINDOWS_MODELS = (
    ("Dell Inc.", "Latitude 7440"),
    ("Dell Inc.", "OptiPlex 7010"),
    ("LENOVO", "21HMCTO1WW"),
    ("HP", "HP EliteBook 840 G10"),
    ("Microsoft Corporation", "Surface Laptop 5"),
    ("Microsoft Corporation", "Virtual Machine"),
    ("VMware, Inc.", "VMware7,1"),
)
MAC_MODELS = ("MacBookPro18,3", "MacBookPro18,1", "Mac14,2", "Mac15,3", "MacBookAir10,1", "Mac14,13")
WINDOWS_PLATFORMS: tuple[tuple[str, int, str, str], ...] = (
    # OSPlatform, OSBuild, OSVersionInfo, DeviceType
    ("Windows11", 26100, "24H2", "Workstation"),
    ("Windows11", 22631, "23H2", "Workstation"),
    ("Windows10", 19045, "22H2", "Workstation"),
    ("WindowsServer2022", 20348, "21H2", "Server"),
    ("WindowsServer2019", 17763, "1809", "Server"),
    ("WindowsServer2025", 26100, "24H2", "Server"),
)
LINUX_DISTROS = (
    ("Ubuntu", "22.04"),
    ("Ubuntu", "24.04"),
    ("RedHatEnterpriseLinux", "9.4"),
    ("Debian", "12"),
    ("AmazonLinux", "2023"),
)
MACHINE_GROUPS = {
    "Windows": ("Workstations", "Workstations", "Finance", "Engineering", "Servers - Tier 0", "UnassignedGroup"),
    "macOS": ("Mac Fleet", "Engineering", "main"),
    "Linux": ("Linux Servers", "Kubernetes Nodes"),
}
LOGON_TYPES = (
    "Interactive",
    "Network",
    "Network",
    "RemoteInteractive",
    "Service",
    "Batch",
    "Unlock",
    "CachedInteractive",
)
FAILURE_REASONS = (
    "InvalidUserNameOrPassword",
    "UnknownUserNameOrBadPassword",
    "AccountLocked",
    "AccountDisabled",
    "NetworkLogonTypeNotGrantedToUser",
    "ExpiredPassword",
)
PUBLIC_PORTS = (443, 443, 443, 443, 443, 443, 443, 443, 80, 80, 8443, 22)
INTERNAL_PORTS = (53, 53, 88, 389, 445, 445, 135, 636, 3389, 1433, 5985, 8080, 443)
DEVICE_EVENT_ACTIONS = {
    "Windows": (
        "PowerShellCommand",
        "PowerShellCommand",
        "DnsQueryResponse",
        "NamedPipeEvent",
        "NamedPipeEvent",
        "OpenProcessApiCall",
        "AntivirusScanCompleted",
        "ProcessCreatedUsingWmiQuery",
        "LdapSearch",
        "FirewallOutboundConnectionBlocked",
        "SmartScreenUrlWarning",
        "AsrOfficeChildProcessAudited",
        "GetClipboardData",
        "ScriptContent",
    ),
    "macOS": ("ScriptContent", "ScriptContent", "DnsQueryResponse", "AntivirusScanCompleted"),
    "Linux": ("ScriptContent", "DnsQueryResponse", "AntivirusScanCompleted"),
}
PS_COMMANDS = (
    "Get-Process",
    "Get-Service",
    "Get-ItemProperty",
    "Import-Module",
    "Get-WmiObject",
    "Out-String",
    "Get-ChildItem",
    "Test-Path",
    "ConvertTo-Json",
    "Get-CimInstance",
    "Invoke-WebRequest",
    "Join-Path",
)
# Categories of tables the Streaming API added after the 21 of its GA list (elastic/integrations issue #17230,
# 2026-02-04, names them) that no schema of ours has: records of them are skipped and counted.
ALIEN_CATEGORIES = (
    "AdvancedHunting-BehaviorInfo",
    "AdvancedHunting-BehaviorEntities",
    "AdvancedHunting-MessageEvents",
    "AdvancedHunting-MessageUrlInfo",
    "AdvancedHunting-CloudAuditEvents",
)
# Each fails ISO-8601 UTC with 0-7 fractional digits on its form alone (no calendar arithmetic needed).
BAD_DATETIMES = (
    "2026-13-45T25:61:00Z",
    "18/07/2026 14:05:55",
    "yesterday",
    "2026-07-18 14:05:55Z",
    "2026-07-18T14:05:55.12345678Z",
    "2026-07-18",
    "0000-00-00T00:00:00Z",
    "2026-07-18T14:05:55.123Zulu",
    "July 18, 2026 2:05 PM",
)

# ---- mail, identity, cloud-app and alert tables -------------------------------------------------------------
# Values as the captured records in ingestor_tools/samples/ and tests/data/xdr-records/ spell them (their
# provenance is in those directories' SOURCES.md); where a table's records show one value only, the others are
# the values Microsoft's table reference (defender-xdr/advanced-hunting-<table>-table.md) names in the column's
# description.

# External senders of inbound mail: (address template, display name, sender IP template).
MAIL_SENDERS: tuple[tuple[str, str, str], ...] = (
    ("azure-noreply@microsoft.com", "Microsoft Azure", "20.105.{n8}.{n8}"),
    ("microsoft-noreply@microsoft.com", "Microsoft", "20.105.{n8}.{n8}"),
    ("no-reply@sharepointonline.com", "SharePoint Online", "40.107.{n8}.{n8}"),
    ("notifications@github.com", "GitHub", "192.30.252.{n8}"),
    ("noreply@zoom.us", "Zoom", "170.114.{n8}.{n8}"),
    ("news@{vendor}.com", "{vendor} Newsletter", "149.72.{n8}.{n8}"),
    ("billing@{vendor}.com", "{vendor} Billing", "167.89.{n8}.{n8}"),
    ("{user}.{last}@{partner}.com", "{User} {Last}", "52.{n8}.{n8}.{n8}"),
    ("{user}@{partner}.co.uk", "{User} {Last}", "81.{n8}.{n8}.{n8}"),
    ("support@{vendor}.io", "{vendor} Support", "198.2.{n8}.{n8}"),
)
MAIL_HOSTS = (
    "az.westeurope.microsoft.com",
    "az.centralus.microsoft.com",
    "mail.gmail.com",
    "namprd04.prod.outlook.com",
)
MAIL_PARTNERS = ("fabrikam", "northwind", "adventure-works", "tailspintoys", "woodgrovebank", "proseware", "lucerne")
MAIL_SUBJECTS = (
    "User at risk detected",
    "Your weekly {proj} digest",
    "Invoice {n} from {vendor}",
    "RE: {proj} status update",
    "FW: {word} review",
    '{User} shared "{doc}" with you',
    "Meeting notes: {proj} sync",
    "Action required: confirm your {vendor} account",
    "[{org}/{proj}] Pull request #{n}: {word} {word}",
    "Your {vendor} subscription renews soon",
    "Q{n1} {word} report",
    "Password expiry notice",
    "Welcome to {proj}",
)
MAIL_LANGUAGES = ("en", "en", "en", "en", "de", "fr", "nl", "es")
# (ThreatTypes, DetectionMethods, ConfidenceLevel, DeliveryAction, DeliveryLocation, EmailAction, EmailActionPolicy)
MAIL_VERDICTS: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    (
        "Spam",
        '{"Spam":["Fingerprint matching"]}',
        '{"Spam":"Normal"}',
        "Junked",
        "Junk folder",
        "Move message to junk mail folder",
        "Antispam",
    ),
    (
        "Spam",
        '{"Spam":["Mixed analysis detection"]}',
        '{"Spam":"High"}',
        "Blocked",
        "Quarantine",
        "Send to quarantine",
        "Antispam high-confidence",
    ),
    (
        "Phish",
        '{"Phish":["URL detonation reputation"]}',
        '{"Phish":"High","Spam":"Normal"}',
        "Blocked",
        "Quarantine",
        "Send to quarantine",
        "Antispam phishing",
    ),
    (
        "Phish",
        '{"Phish":["Impersonation domain"]}',
        '{"Phish":"Low"}',
        "Junked",
        "Junk folder",
        "Move message to junk mail folder",
        "Anti-phishing domain impersonation",
    ),
    (
        "Malware",
        '{"Malware":["File detonation"]}',
        '{"Malware":"High"}',
        "Blocked",
        "Quarantine",
        "Send to quarantine",
        "Antimalware Safe Attachments",
    ),
)
MAIL_CONNECTORS = ("Relai SMTP interne", "Inbound from {vendor} gateway", "Outbound to {vendor}")
# (FileName template, FileType, FileExtension)
MAIL_ATTACHMENTS: tuple[tuple[str, str, str], ...] = (
    ("notes.txt", "txt;text", ".txt"),
    ("Outlook-{hex8}.jpg", "jpeg", ".jpg"),
    ("image{n1}.png", "png", ".png"),
    ("Invoice_{n}.pdf", "pdf", ".pdf"),
    ("{doc}.docx", "docx;zip", ".docx"),
    ("{doc}.xlsx", "xlsx;zip", ".xlsx"),
    ("{proj}-{word}.zip", "zip", ".zip"),
    ("AttachedImage", "png", ""),
)
# Links mail carries: click-tracking redirects make the long tail (the captured UrlClickEvents record's URL is one).
MAIL_URLS = (
    "https://{domain}{path}",
    "https://{domain}{path}",
    "https://u{n}.ct.sendgrid.net/ls/click?upn=u001.{b64long}{b64long}",
    "https://links.{vendor}.com/els/v2/{b64short}/{b64long}{b64long}",
    "https://{org}.sharepoint.com/:w:/s/{proj}/E{b64short}?e={b64short}",
    "https://u{n}.ct.sendgrid.net/ls/click?upn=u001.{b64long}",
    "https://links.{vendor}.com/els/v2/{b64short}/{b64long}",
    "https://getvero.s3.amazonaws.com/%2Fuploads%2F{hex32}%2Ffullsize%2F{guid}-logo%402x.png",
    "https://github.com/{org}/{proj}/pull/{n}",
    "https://aka.ms/{word}",
)
URL_LOCATIONS = ("Body", "Body", "Body", "Body", "Attachment", "Subject")
# (Action, ActionType, ActionTrigger, ActionResult, DeliveryLocation, ThreatTypes, DetectionMethods)
POST_DELIVERY: tuple[tuple[str, str, str, str, str, str | None, str | None], ...] = (
    ("Reprocessed", "Redelivery", "SpecialAction", "Success", "Inbox", None, None),
    (
        "Moved to quarantine",
        "Spam ZAP",
        "SpecialAction",
        "Success",
        "Quarantine",
        "Spam",
        '{"Spam":["Fingerprint matching"]}',
    ),
    (
        "Moved to quarantine",
        "Phish ZAP",
        "SpecialAction",
        "Success",
        "Quarantine",
        "Phish",
        '{"Phish":["URL detonation"]}',
    ),
    ("Moved to deleted items", "Manual Remediation", "AdminAction", "Success", "Deleted items", "Phish", None),
)
URL_CLICK_ACTIONS = ("ClickAllowed", "ClickAllowed", "ClickAllowed", "ClickAllowed", "ClickBlocked")
URL_CLICK_APPS = (("Mail", "0.0.0000"), ("Outlook", "16.0.18025.20160"), ("Teams", "24243.1309.3132.617"))

# Defender for Cloud Apps' application ids, as CloudAppEvents records and published hunting queries carry them,
# with the actions each app's records show: (Application, ApplicationId, AuditSource workload, actions).
CLOUD_APPS: tuple[tuple[str, int, str, tuple[str, ...]], ...] = (
    (
        "Microsoft Exchange Online",
        20893,
        "Exchange",
        ("MailItemsAccessed", "Send", "MoveToDeletedItems", "New-InboxRule"),
    ),
    (
        "Microsoft SharePoint Online",
        20892,
        "SharePoint",
        ("FileAccessed", "FileModified", "FileDownloaded", "FileUploaded"),
    ),
    ("Microsoft OneDrive for Business", 15600, "OneDrive", ("FileAccessed", "FileSyncDownloadedFull", "FileModified")),
    ("Microsoft Teams", 28375, "MicrosoftTeams", ("MessageSent", "MessageReadReceiptReceived", "TeamsSessionStarted")),
    ("Microsoft 365", 11161, "AzureActiveDirectory", ("UserLoggedIn", "AirInvestigationData")),
    ("Microsoft Azure", 12260, "Azure", ("Write Deployments", "Read Storage Account Keys")),
)
CLOUD_ISPS = (
    ("US", "boydton", "Microsoft Azure", "Cloud provider"),
    ("US", "redmond", "Microsoft Corporation", "Cloud provider"),
    ("FR", "paris", "Orange", "Internet service provider"),
    ("GB", "london", "British Telecommunications", "Internet service provider"),
    ("NL", "amsterdam", "KPN", "Internet service provider"),
    ("DE", "frankfurt am main", "Deutsche Telekom AG", "Internet service provider"),
)
EDGE_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 "
    "Edg/138.0.0.0"
)
# (OSPlatform, DeviceType, UserAgent) of the clients users sign in and work from.
CLIENT_PLATFORMS: tuple[tuple[str, str, str], ...] = (
    ("Windows 10", "Desktop", EDGE_UA),
    ("Windows 10", "Desktop", "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18025; Pro)"),
    ("Windows 10", "Desktop", "Client=REST;Client=RESTSystem;;"),
    ("OS X", "Desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.5 Safari/605.1.15"),
    ("iOS", "Mobile", "Outlook-iOS/2.0"),
)  # fmt: skip

# Defender for Identity: the on-premises logons, queries and directory changes a domain controller sees.
AD_LOGON_TYPES = ("Resource access", "Resource access", "Credentials validation", "Interactive")
CLOUD_LOGON_TYPES = ("Login:login", "Login:reprocess", "OAuth2:Authorize", "Login:resume")
CLOUD_LOGON_APPS = ("Microsoft 365", "Microsoft 365", "Microsoft Teams", "Office 365")
LOGON_FAILURES = ("WrongPassword", "Generic", "AccountDisabled")
# (ActionType, QueryType, Protocol, DestinationPort, QueryTarget template)
AD_QUERIES: tuple[tuple[str, str, str, int, str], ...] = (
    ("DNS query", "Text", "Dns", 53, "{domain}"),
    ("DNS query", "A", "Dns", 53, "{server}"),
    ("SAMR query", "QueryGroup", "Samr", 445, "{group}"),
    ("SAMR query", "QueryUser", "Samr", 445, "{account}"),
    ("LDAP query", "AllObjects", "Ldap", 389, "{account}"),
)
AD_GROUPS = ("Domain Admins", "Server_Admin", "Finance Share", "VPN Users", "Remote Desktop Users", "DnsAdmins")
# IdentityDirectoryEvents: the ActionType values published hunting queries filter on, and the AdditionalFields
# keys they read (TO.GROUP, FROM.GROUP, ACTOR.ACCOUNT, ACTOR.DEVICE, TARGET_OBJECT.USER).
DIRECTORY_ACTIONS = (
    "Account Password changed",
    "Account Password changed",
    "Group Membership changed",
    "Group Membership changed",
    "Account disabled",
    "Account enabled",
)
DEPARTMENTS = (
    ("Accounting", "Accountant"),
    ("Engineering", "Software Engineer"),
    ("Sales", "Account Manager"),
    ("IT", "Systems Administrator"),
    ("HR", "HR Partner"),
    ("Legal", "Counsel"),
)

# Alerts: (ServiceSource, DetectionSource, Title, Category, Severity, AttackTechniques, evidence kinds)
ALERT_KINDS: tuple[tuple[str, str, str, str, str, str, tuple[str, ...]], ...] = (
    (
        "Microsoft Defender for Endpoint",
        "EDR",
        "Suspicious Process Discovery",
        "Discovery",
        "Low",
        '["Process Discovery (T1057)","PowerShell (T1059.001)"]',
        ("Machine", "Process", "User"),
    ),
    (
        "Microsoft Defender for Endpoint",
        "Antivirus",
        "'Lodi' unwanted software was prevented",
        "DefenseEvasion",
        "Informational",
        "",
        ("Machine", "File"),
    ),
    (
        "Microsoft Defender for Endpoint",
        "EDR",
        "Indirect command execution using a system utility",
        "DefenseEvasion",
        "Low",
        '["Indirect Command Execution (T1202)"]',
        ("Machine", "Process", "File", "User"),
    ),
    (
        "Microsoft Defender for Office 365",
        "Microsoft Defender for Office 365",
        "Phish delivered due to an IP allow policy",
        "InitialAccess",
        "Informational",
        '["Phishing (T1566)"]',
        ("MailMessage", "Mailbox", "Url"),
    ),
    (
        "Microsoft Defender XDR",
        "Microsoft 365 Defender",
        "User accessed a link in an email subsequently quarantined by ZAP",
        "InitialAccess",
        "Medium",
        '["Spearphishing Link (T1566.002)"]',
        ("MailMessage", "User", "Url"),
    ),
    (
        "AAD Identity Protection",
        "AAD Identity Protection",
        "Malicious IP address",
        "InitialAccess",
        "High",
        "",
        ("Ip", "User"),
    ),
    (
        "Microsoft Defender for Identity",
        "Microsoft Defender for Identity",
        "Account enumeration reconnaissance",
        "Discovery",
        "Medium",
        '["Account Discovery (T1087)","Domain Account (T1087.002)"]',
        ("User", "Machine", "Ip"),
    ),
)
