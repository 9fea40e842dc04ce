# cmdline.awk: functions shared by answer-facts.awk and run-key-facts.awk, Windows command lines read as
# Windows would (loaded first: awk -f cmdline.awk -f PROGRAM). Command lines holding cmd.exe operators other
# than the one redirection are not understood here.
function hex(h,    v, i) {
    v = 0
    for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1
    return v
}
function unxml(s,    out, i, j, ent, c) {
    out = ""
    while ((i = index(s, "&")) > 0) {
        out = out substr(s, 1, i - 1)
        s = substr(s, i + 1)
        j = index(s, ";")
        ent = j ? substr(s, 1, j - 1) : ""
        c = ""
        if (ent == "amp") c = "&"
        else if (ent == "lt") c = "<"
        else if (ent == "gt") c = ">"
        else if (ent == "quot") c = "\""
        else if (ent == "apos") c = "\047"
        else if (ent ~ /^#[0-9]+$/ && substr(ent, 2) + 0 > 0) c = sprintf("%c", substr(ent, 2) + 0)
        else if (ent ~ /^#[xX][0-9a-fA-F]+$/ && hex(substr(ent, 3)) > 0) c = sprintf("%c", hex(substr(ent, 3)))
        if (c == "") { out = out "&"; continue }
        out = out c
        s = substr(s, j + 1)
    }
    return out s
}
function reps(s, k,    out) {
    out = ""
    while (k-- > 0) out = out s
    return out
}
# argv(LINE): LINE split into A[1..n] as CommandLineToArgvW does (blanks outside double quotes
# separate; 2n backslashes before a quote give n and the quote toggles quoting, 2n+1 give n and a
# literal quote; other backslashes are literal); returns n.
function argv(line,    n, i, len, c, q, bs, cur, started) {
    delete A
    n = 0; cur = ""; q = 0; started = 0; len = length(line); i = 1
    while (i <= len) {
        c = substr(line, i, 1)
        if (c == "\\") {
            bs = 0
            while (i <= len && substr(line, i, 1) == "\\") { bs++; i++ }
            started = 1
            if (i <= len && substr(line, i, 1) == "\"") {
                cur = cur reps("\\", int(bs / 2))
                if (bs % 2) { cur = cur "\""; i++ }
            } else
                cur = cur reps("\\", bs)
            continue
        }
        i++
        if (c == "\"") { q = !q; started = 1; continue }
        if (!q && (c == " " || c == "\t")) {
            if (started) { A[++n] = cur; cur = ""; started = 0 }
            continue
        }
        cur = cur c
        started = 1
    }
    if (started) A[++n] = cur
    return n
}
# echo_fact(LINE): for `cmd[.exe] [/d /q /s] /c echo TEXT>TARGET` (one ">", blanks around it
# optional, TARGET COM1 or \\HOST\SHARE\PATH, maybe in quotes): "echo com1 |TEXT|" or "echo unc
# HOST SHARE |PATH|TEXT|" (HOST lower case, PATH with "/"). TEXT is what cmd echoes: everything
# after "echo " up to the ">", blanks included. "" for any other command line.
function echo_fact(line,    s, k, prog, p, text, target, lt, rest, host, share, path) {
    s = line
    sub(/^[ \t]+/, "", s)
    if (substr(s, 1, 1) == "\"") {
        k = index(substr(s, 2), "\"")
        if (k == 0) return ""
        prog = substr(s, 2, k - 1)
        s = substr(s, k + 2)
    } else {
        match(s, /^[^ \t]+/)
        prog = substr(s, 1, RLENGTH)
        s = substr(s, RLENGTH + 1)
    }
    prog = tolower(prog)
    sub(/^.*[\\\/]/, "", prog)
    if (prog != "cmd" && prog != "cmd.exe") return ""
    for (;;) {
        sub(/^[ \t]+/, "", s)
        if (s ~ /^\/[cC]([ \t]|$)/) { s = substr(s, 3); break }
        if (s ~ /^\/[dDqQsS]([ \t]|$)/) { s = substr(s, 3); continue }
        return ""
    }
    sub(/^[ \t]+/, "", s)
    if (length(s) >= 2 && substr(s, 1, 1) == "\"" && substr(s, length(s)) == "\"") s = substr(s, 2, length(s) - 2)
    if (tolower(substr(s, 1, 4)) != "echo" || substr(s, 5, 1) !~ /[ \t]/) return ""
    s = substr(s, 6)
    p = index(s, ">")
    if (p == 0 || index(substr(s, p + 1), ">") > 0) return ""
    text = substr(s, 1, p - 1)
    target = substr(s, p + 1)
    if (text ~ /[&|<^%"]/ || text !~ /[^ \t]/ || text ~ /(^|[ \t])[0-9]$/) return ""
    gsub(/^[ \t]+|[ \t]+$/, "", target)
    if (length(target) >= 2 && target ~ /^".*"$/) target = substr(target, 2, length(target) - 2)
    if (target ~ /[&|<^%"]/) return ""
    lt = tolower(target)
    if (lt == "com1" || lt == "com1:" || lt == "\\\\.\\com1") return "echo com1 |" text "|"
    if (substr(target, 1, 2) != "\\\\") return ""
    rest = substr(target, 3)
    k = index(rest, "\\")
    if (k < 2) return ""
    host = substr(rest, 1, k - 1)
    rest = substr(rest, k + 1)
    k = index(rest, "\\")
    if (k < 2) return ""
    share = substr(rest, 1, k - 1)
    path = substr(rest, k + 1)
    if (host !~ /^[A-Za-z0-9][A-Za-z0-9.-]*$/ || share !~ /^[A-Za-z0-9][A-Za-z0-9_.-]*$/) return ""
    if (path ~ /[:*?<>|]/ || index(path, "/") > 0 || path ~ /(^|\\)\.?\.?(\\|$)/) return ""
    gsub(/\\/, "/", path)
    return "echo unc " tolower(host) " " share " |" path "|" text "|"
}
# runkey_fact(LINE): for `reg[.exe] add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run /v NAME
# [/t REG_SZ|REG_EXPAND_SZ] /d DATA [/f]`: "runkey NAME TYPE |DATA|" (NAME without blanks or "|", TYPE
# reg_sz or reg_expand_sz); else "".
function runkey_fact(line,    n, prog, key, t, sw, name, type, data, hasd) {
    n = argv(line)
    if (n < 3) return ""
    prog = tolower(A[1])
    sub(/^.*[\\\/]/, "", prog)
    if ((prog != "reg" && prog != "reg.exe") || tolower(A[2]) != "add") return ""
    key = tolower(A[3])
    sub(/\\+$/, "", key)
    if (substr(key, 1, 19) == "hkey_local_machine\\") key = "hklm" substr(key, 19)
    if (key != "hklm\\software\\microsoft\\windows\\currentversion\\run") return ""
    name = ""; type = "reg_sz"; data = ""; hasd = 0
    for (t = 4; t <= n; t++) {
        sw = tolower(A[t])
        if (sw == "/v" && t < n) name = A[++t]
        else if (sw == "/t" && t < n) type = tolower(A[++t])
        else if (sw == "/d" && t < n) { data = A[++t]; hasd = 1 }
        else if (sw != "/f") return ""
    }
    if ((type != "reg_sz" && type != "reg_expand_sz") || !hasd || name == "" || name ~ /[ \t|]/) return ""
    return "runkey " name " " type " |" data "|"
}
# program(WORD): the program a command line's word names, lower case, without its folder.
function program(word) {
    word = tolower(word)
    sub(/^.*[\\\/]/, "", word)
    return word
}
# report_fact(LINE): for `wscript[.exe] [//B //NoLogo ...] SCRIPT NAME [BODY [ATTEMPTS]]` (waited for) or
# `cmd[.exe] /c start "" wscript[.exe] ...` or, in a batch file, `start "" wscript[.exe] ...` (started, not
# waited for): "report WAIT |SCRIPT|NAME|BODY|ATTEMPTS|" with WAIT 1 or 0; "" for any other command line (or a
# field holding "|").
function report_fact(line,    n, i, wait, prog, f) {
    n = argv(line)
    if (n < 1) return ""
    i = 1
    wait = 1
    prog = program(A[1])
    if (prog == "cmd" || prog == "cmd.exe") {
        if (n < 5 || tolower(A[2]) != "/c" || tolower(A[3]) != "start" || A[4] != "") return ""
        i = 5
        wait = 0
        prog = program(A[5])
    } else if (prog == "start") {
        if (n < 3 || A[2] != "") return ""
        i = 3
        wait = 0
        prog = program(A[3])
    }
    if (prog != "wscript" && prog != "wscript.exe") return ""
    for (i++; i <= n && substr(A[i], 1, 2) == "//"; i++) ;
    if (i + 1 > n || n > i + 3) return ""
    f = A[i] "|" A[i + 1] "|" (i + 2 <= n ? A[i + 2] : "") "|" (i + 3 <= n ? A[i + 3] : "")
    if (gsub(/\|/, "|", f) != 3) return ""
    return "report " wait " |" f "|"
}
# productkey_fact(LINE): for `cmd /c for %X in (...) do @if exist %X:\winarm.marker call %X:\winarm\product-key.cmd`
# (the product-key script on the answer medium): "productkey"; else "".
function productkey_fact(line,    l) {
    l = tolower(line)
    if (l !~ /if exist %[a-z]:\\winarm\.marker/) return ""
    return l ~ /call[ \t]+%[a-z]:\\winarm\\product-key\.cmd/ ? "productkey" : ""
}
# driver_fact(LINE): for a command line that runs install-drivers.cmd: "drivers ARG" (ARG the word after
# the script's name, "" when none); else "".
function driver_fact(line,    p, s) {
    p = index(tolower(line), "install-drivers.cmd")
    if (p == 0) return ""
    s = substr(line, p + 19)
    sub(/^"/, "", s)
    sub(/^[ \t]+/, "", s)
    match(s, /^[^ \t"&|()<>]*/)
    return "drivers " substr(s, 1, RLENGTH)
}
# copy_fact(LINE): for `cmd /c for %X in (...) do @if exist %X:\winarm.marker (... copy [/y] %X:\SRC DEST
# ...)`, a copy from the answer medium: "copy |SRC|DEST|" (SRC with "/", DEST as written, quotes removed);
# else "".
function copy_fact(line,    l, s, src, dest, k) {
    l = tolower(line)
    if (l !~ /if exist %[a-z]:\\winarm\.marker/) return ""
    if (!match(l, /copy[ \t]+(\/y[ \t]+)?%[a-z]:\\/)) return ""
    s = substr(line, RSTART + RLENGTH)
    match(s, /^[^ \t"&|()<>]+/)
    src = substr(s, 1, RLENGTH)
    s = substr(s, RLENGTH + 1)
    sub(/^[ \t]+/, "", s)
    if (substr(s, 1, 1) == "\"") {
        k = index(substr(s, 2), "\"")
        if (k == 0) return ""
        dest = substr(s, 2, k - 1)
    } else {
        match(s, /^[^ \t&|()<>]*/)
        dest = substr(s, 1, RLENGTH)
    }
    if (src == "" || dest == "" || index(dest, "|") > 0) return ""
    gsub(/\\/, "/", src)
    return "copy |" src "|" dest "|"
}
# batch_fact(LINE): for `cmd[.exe] /c "SCRIPT"` or `cmd[.exe] /c call "SCRIPT"` (waited for) or `cmd[.exe] /c
# start "" [/min] "SCRIPT"` (started), SCRIPT a .cmd or .bat file: "batch WAIT |SCRIPT|" (WAIT 1 or 0); else "".
function batch_fact(line,    n, i, wait, script) {
    n = argv(line)
    if (n < 3 || (program(A[1]) != "cmd" && program(A[1]) != "cmd.exe") || tolower(A[2]) != "/c") return ""
    i = 3
    wait = 1
    if (tolower(A[3]) == "call") i = 4
    else if (tolower(A[3]) == "start" && n >= 5 && A[4] == "") {
        wait = 0
        for (i = 5; i < n && substr(A[i], 1, 1) == "/"; i++) ;
    }
    if (i != n) return ""
    script = A[n]
    if (tolower(script) !~ /\.(cmd|bat)$/ || index(script, "|") > 0) return ""
    return "batch " wait " |" script "|"
}
# task_fact(LINE): for `schtasks[.exe] /create /tn NAME /tr COMMAND /sc onstart /ru SYSTEM [/rl LEVEL] [/f]`, a
# task run as SYSTEM at every start: "task NAME |COMMAND|"; else "" (other schedules are not played).
function task_fact(line,    n, t, sw, name, cmd, sched, user) {
    n = argv(line)
    if (n < 2 || (program(A[1]) != "schtasks" && program(A[1]) != "schtasks.exe") || tolower(A[2]) != "/create")
        return ""
    name = ""; cmd = ""; sched = ""; user = ""
    for (t = 3; t <= n; t++) {
        sw = tolower(A[t])
        if (sw == "/tn" && t < n) name = A[++t]
        else if (sw == "/tr" && t < n) cmd = A[++t]
        else if (sw == "/sc" && t < n) sched = tolower(A[++t])
        else if (sw == "/ru" && t < n) user = tolower(A[++t])
        else if (sw == "/rl" && t < n) t++
        else if (sw != "/f") return ""
    }
    if (sched != "onstart" || user != "system" || name == "" || name ~ /[ \t|]/ || cmd == "" || index(cmd, "|") > 0)
        return ""
    return "task " name " |" cmd "|"
}
