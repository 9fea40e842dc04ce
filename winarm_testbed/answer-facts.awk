# answer-facts.awk: the facts the testbed needs from an unattend XML file (see answer_facts in init.sh);
# run after cmdline.awk.
function bodies(s, tag,    n, i, rest, c, j) {
    n = 0
    delete E
    while ((i = index(s, "<" tag)) > 0) {
        rest = substr(s, i + length(tag) + 1)
        c = substr(rest, 1, 1)
        if (c != ">" && c != " " && c != "\t" && c != "/") { s = rest; continue }
        j = index(rest, "</" tag ">")
        if (j == 0) { E[++n] = rest; break }
        E[++n] = substr(rest, 1, j - 1)
        s = substr(rest, j + length(tag) + 3)
    }
    return n
}
function text(s, tag,    i, rest, j) {
    i = index(s, "<" tag ">")
    if (i == 0) return ""
    rest = substr(s, i + length(tag) + 2)
    j = index(rest, "</" tag ">")
    return j ? substr(rest, 1, j - 1) : rest
}
# netuse(ORDER, LINE): the "share" fact of a `net use` command line, if LINE is one ("" else).
function netuse(order, line,    T, nt, t, u, tok, unc, rest, k, host, name, user, pass, prog, persist) {
    nt = split(line, T)
    for (t = 1; t <= nt; t++)
        if (length(T[t]) >= 2 && T[t] ~ /^".*"$/) T[t] = substr(T[t], 2, length(T[t]) - 2)
    for (t = 1; t < nt; t++) {
        prog = tolower(T[t])
        sub(/^.*[\\\/]/, "", prog)
        if ((prog == "net" || prog == "net.exe") && tolower(T[t + 1]) == "use") break
    }
    if (t >= nt) return ""
    unc = T[t + 3]
    rest = substr(unc, 3)
    k = index(rest, "\\")
    host = substr(rest, 1, k - 1)
    name = substr(rest, k + 1)
    if (T[t + 2] !~ /^[A-Za-z]:$/ || substr(unc, 1, 2) != "\\\\" || k < 2 || name !~ /^[A-Za-z0-9][A-Za-z0-9_.-]*$/) {
        print "netuse-bad " order
        return ""
    }
    user = ""
    pass = ""
    persist = 0
    for (u = t + 4; u <= nt; u++) {
        tok = T[u]
        if (tolower(substr(tok, 1, 6)) == "/user:") user = substr(tok, 7)
        else if (tolower(tok) == "/persistent:yes") persist = 1
        else if (substr(tok, 1, 1) != "/") pass = tok
    }
    return "share " toupper(T[t + 2]) " " host " " name " " persist (user == "" ? "" : " " user (pass == "" ? "" : " " pass))
}
function attr(s, name,    head) {
    head = substr(s, 1, index(s, ">"))
    if (!match(head, name "=[\"\047][^\"\047]*")) return ""
    return substr(head, RSTART + length(name) + 2, RLENGTH - length(name) - 2)
}
{ doc = doc $0 " " }
END {
    gsub(/\r/, "", doc)
    while ((i = index(doc, "<!--")) > 0) {
        rest = substr(doc, i + 4)
        j = index(rest, "-->")
        doc = substr(doc, 1, i - 1) (j ? substr(rest, j + 3) : "")
    }
    if (index(doc, "<unattend") > 0) print "unattend 1"
    ns = bodies(doc, "settings")
    for (k = 1; k <= ns; k++) S[k] = E[k]
    ncmd = 0
    nsp = 0
    for (k = 1; k <= ns; k++) {
        pass = attr(S[k], "pass")
        if (pass == "windowsPE") {
            nc = bodies(S[k], "component")
            for (c = 1; c <= nc; c++) {
                if (attr(E[c], "name") != "Microsoft-Windows-Setup") continue
                print "setup 1"
                if (index(E[c], "<DiskConfiguration") > 0) print "diskconfig 1"
                if (index(E[c], "<ImageInstall") > 0) print "imageinstall 1"
            }
        } else if (pass == "specialize") {
            name = unxml(text(S[k], "ComputerName"))
            gsub(/^[ \t]+|[ \t]+$/, "", name)
            if (name != "") print "computername " name
            nr = bodies(S[k], "RunSynchronousCommand")
            for (r = 1; r <= nr; r++) {
                raw = unxml(text(E[r], "Path"))
                path = tolower(raw)
                if (path ~ /install-drivers\.cmd/) print "specialize 1"
                if (path ~ /10\.0\.2\.4[ \t]+host\.lan/ && path ~ />>?[ \t]*"?[^ \t]*[\\\/]etc[\\\/]hosts/)
                    print "hostslan 1"
                if (path ~ /lanmanworkstation/ && path ~ /allowinsecureguestauth/ && path ~ /\/d[ \t]+1/)
                    print "guestauth 1"
                fact = copy_fact(raw)
                if (fact == "") fact = driver_fact(raw)
                if (fact == "") continue
                order = text(E[r], "Order")
                gsub(/[ \t]/, "", order)
                nsp++
                PO[nsp] = order + 0
                PC[nsp] = order " " fact
            }
        } else if (pass == "oobeSystem") {
            nf = bodies(S[k], "FirstLogonCommands")
            all = ""
            for (f = 1; f <= nf; f++) all = all E[f]
            nr = bodies(all, "SynchronousCommand")
            for (r = 1; r <= nr; r++) {
                line = unxml(text(E[r], "CommandLine"))
                order = text(E[r], "Order")
                gsub(/[ \t]/, "", order)
                if (tolower(line) ~ /install-drivers\.cmd/) print "firstlogon 1"
                fact = driver_fact(line)
                if (fact == "") fact = productkey_fact(line)
                if (fact == "") fact = netuse(order, line)
                if (fact == "") fact = echo_fact(line)
                if (fact == "") fact = runkey_fact(line)
                if (fact == "") fact = report_fact(line)
                if (fact == "") fact = batch_fact(line)
                if (fact == "") fact = task_fact(line)
                if (fact == "") continue
                ncmd++
                O[ncmd] = order + 0
                C[ncmd] = order " " fact
            }
        }
    }
    # commands run by Order (a stable insertion sort: equal Orders keep document order)
    sort_by_order(PO, PC, nsp)
    for (a = 1; a <= nsp; a++) print "sp " PC[a]
    sort_by_order(O, C, ncmd)
    for (a = 1; a <= ncmd; a++) print "fl " C[a]
}
function sort_by_order(ORD, CMD, n,    a, b, o, v) {
    for (a = 2; a <= n; a++) {
        o = ORD[a]; v = CMD[a]
        for (b = a - 1; b >= 1 && ORD[b] > o; b--) { ORD[b + 1] = ORD[b]; CMD[b + 1] = CMD[b] }
        ORD[b + 1] = o; CMD[b + 1] = v
    }
}
