#!/bin/sh
# winarm test guest: /init of the initramfs (busybox sh).
#
# Prints whole lines "WINARM-PHASE <name>" (phase boundaries) and "WINARM-EVENT <name> <detail>" (details)
# on the serial console. Playing Windows, it prints no WINARM-PHASE line but "error": Windows for ARM64 has no
# COM port under QEMU, so what Windows tells winarm goes through the guest channel (reports, below), and the
# host names Setup's passes by boot order.
#
# Without an answer medium (no CD with a root Autounattend.xml), the plain installer:
#   init                 once the boot's mode is known (after the CD scan, or the look at the disk's state)
#   setup, setup-done    winarm.boot=cd: the seed image from the CD written to /dev/vda, then `reboot -f`
#   ready, poweroff      winarm.boot=disk: waiting for the ACPI power button, then `poweroff -f`
#
# Playing Windows (an answer medium found at a CD boot, or Setup's state on the disk at a disk boot), Windows
# Setup's passes; its own Linux steps are events there: "WINARM-EVENT init", "WINARM-EVENT ready",
# "WINARM-EVENT poweroff". The state lives on the applied disk, in the FAT "Windows" partition /dev/vda2:
# /Windows/Panther/unattend.xml, the cached answer file, and /Windows/Panther/winarm-state, lines
# "next=<pass>" and "drivers=<passes>"; C:\X is /X there, %WINDIR% /Windows.
#   windowsPE            winarm.boot=cd: answer file checked (windowsPE has Microsoft-Windows-Setup with
#                        DiskConfiguration and ImageInstall); one "WINARM-EVENT winpe-driver <folder>" per
#                        folder of $WinPEDriver$; sources/winarm-seed.img (UDF tree) written to /dev/vda,
#                        then sources/install.wim right after it (the bytes its TOTALBYTES counts); the
#                        $WinPEDriver$ folders copied into the driver store (Setup adds them to the image);
#                        state next=specialize; `reboot -f`
#   specialize           first boot from the disk: the specialize RunSynchronousCommands the testbed knows,
#                        by Order: a copy from the answer medium (`cmd /c for %d in (...) do @if exist
#                        %d:\winarm.marker (... copy /y %d:\SRC "DEST" ...)`: the report script onto the
#                        disk; "WINARM-EVENT command-failed specialize ORDER REASON" when it fails) and the
#                        driver script (`... install-drivers.cmd PASS`): the drivers of /winarm/drivers.txt
#                        copied into the driver store ("WINARM-EVENT driver-installed <folder>" each), then,
#                        when the medium's install-drivers.cmd runs the report script, the "drivers" report;
#                        state next=oobeSystem; `reboot -f`
#   oobeSystem           next boot: the power button armed; the FirstLogonCommands the testbed knows, by
#                        Order: the driver script (as above); a report (`wscript[.exe] //B //NoLogo SCRIPT
#                        NAME [BODY [ATTEMPTS]]`, or `cmd /c start "" wscript ...`, not waited for);
#                        `net use L: \\host.lan\NAME [...]` (which needs the specialize command adding host.lan
#                        to the hosts file): the network up (eth0 10.0.2.15/24), //10.0.2.4/NAME mounted
#                        (cifs; "WINARM-EVENT share-mounted NAME"), folders and a file written, renamed,
#                        overwritten, a scratch file deleted ("WINARM-EVENT share-written NAME
#                        winarm-testbed/first-logon/hello-renamed.txt", or "share-readonly NAME" when the
#                        share refuses writes); it stays mounted to the end of the commands;
#                        `cmd[.exe] /c echo TEXT>COM1` (blanks around ">" optional): fails, there is no COM
#                        port ("WINARM-EVENT command-failed ORDER REASON");
#                        `cmd[.exe] /c echo TEXT>\\host.lan\SHARE\FILE`: TEXT and CRLF written to FILE on a
#                        share mapped before ("WINARM-EVENT share-file-written SHARE FILE"; when it fails,
#                        "WINARM-EVENT command-failed ORDER REASON" and on, as cmd would);
#                        `reg[.exe] add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run /v NAME
#                        [/t REG_SZ|REG_EXPAND_SZ] /d "COMMAND" [/f]`: NAME TYPE COMMAND kept in
#                        /Windows/winarm-run-keys ("WINARM-EVENT run-key-added NAME"), run at later logons,
#                        not this one; a batch file (`cmd[.exe] /c "SCRIPT"`, `/c call`, `/c start "" [/min]`)
#                        read from C: for what the testbed plays of it: the share script (its login read
#                        from the answer medium's file and stored as cmdkey would, in
#                        /Windows/winarm-credentials, "WINARM-EVENT share-login-stored HOST USER"; each
#                        `call :map L: "\\HOST\NAME"` mounted with that login or as a guest, retried
#                        ("share-map-retried"/"share-map-failed" events), then written to as `net use` above)
#                        and `diskpart /s SCRIPT` (`select volume C`, `extend`: C:'s partition extended over
#                        the space after it on the GPT, "WINARM-EVENT volume-extended C: OLD_MIB NEW_MIB" or
#                        "volume-not-extended C: REASON"); `schtasks /create /tn NAME /tr COMMAND /sc onstart
#                        /ru SYSTEM` kept in /Windows/winarm-tasks ("WINARM-EVENT task-added NAME"); other
#                        commands are ignored. Then the shares unmounted; the reports not waited for end;
#                        state next=complete; then ready, poweroff (events)
#   later boots          once Setup is complete: the disk check (below), the power button armed, the network
#                        up when NetKVM is in the driver store, each start task's batch file (as above, as
#                        SYSTEM, before the logon), then each Run-key command the testbed knows (the echo,
#                        report and batch forms above, the reports started and not waited for; %WINDIR%
#                        expanded only in a REG_EXPAND_SZ value; a file on a share not mounted yet is
#                        written with the login cmdkey stored for its host, or as a guest: "WINARM-EVENT
#                        share-reconnected NAME", unmounted after; "WINARM-EVENT run-key-failed NAME REASON"
#                        when one fails); the reports end; ready, poweroff (events)
#   error <reason>       on any failure, followed by `poweroff -f`; never hangs silently
#
# Reports, what report.vbs does: POST the body file (or an empty body) with busybox `timeout 5 wget -q -O
# /dev/null --post-file=FILE URL` (Debian's busybox 1.35 wget has no timeout option: its -T crashes) to URL
# = the http:// URL quoted in the report script on the disk, followed by the report's name: "WINARM-EVENT
# report-sent NAME", or after the attempts "WINARM-EVENT report-failed NAME REASON" and the boot goes on.
# The network is there only once NetKVM is in the driver store (no network driver, no network, as on
# Windows: the NIC comes up as the driver is installed); before that an attempt fails with "no network
# driver". Attempts: ATTEMPTS (default 60, as the script) but at most 40, 0.5 s apart (the script: 3 s), and
# none begun after 20 s, so a blocked channel costs seconds (an unreachable 10.0.2.5 about 3 s an attempt).
# The "drivers" report's body: "pass PASS", then "driver <folder> 0" a driver, CRLF lines (what the script's
# echo lines write).
#
# The disk check, at every later boot from the disk (the plain installer's too), before the Run-key commands
# and `ready`: every FAT file system of /dev/vda (the ESP /dev/vda1 and the "Windows" partition /dev/vda2,
# the guest's only writes) is checked read-only with fsck.fat -n (dosfstools), then one line:
#   WINARM-EVENT fsck clean                nothing found;
#   WINARM-EVENT fsck errors SUMMARY       what fsck.fat found, "vda2: finding; finding / vda1: ..." (the
#                        dirty bit "dirty bit set (not properly unmounted)", which Linux sets while the file
#                        system is mounted read-write, so any crash then leaves it; lost clusters; ...); then,
#                        as Windows runs chkdsk at boot on a dirty volume, fsck.fat -a repairs (each repaired
#                        partition then fsynced, which flushes the disk's write cache) and a second read-only
#                        check follows: "WINARM-EVENT fsck repaired vda2" when it finds nothing, else
#                        "WINARM-EVENT fsck unrepaired SUMMARY";
#   WINARM-EVENT fsck failed REASON        fsck.fat could not check (exit status 2 or more).
# None of these stop the boot.
#
# The write load (crash tests: bench/crash_rounds.py), only when C:\Windows\winarm-write-load.txt exists
# (/Windows/winarm-write-load.txt on /dev/vda2; the host puts it there, see winarm/testbed/write_load.py):
# after `ready`, the partition is mounted read-write and "WINARM-EVENT guest-writing vda2" printed; until the
# power button, a loop writes files under C:\winarm-write-load: a file of 64 KiB to 512 KiB written under a
# temporary name and renamed over one of eight, another of them deleted, a log file appended to (deleted
# past 2 MiB), small files in subfolders rewritten (about 6 MiB live at most); every fifth step `sync` and
# an fsync of the log file (vfat has no sync_fs: only an fsync flushes the disk's write cache, QEMU's for a
# qcow2 image, where a new cluster's mapping waits for the flush). At the power button "poweroff" comes as before
# (a phase, or an event playing Windows), then the loop ends its step, the partition is unmounted (written back, dirty
# bit cleared) and flushed, and the guest powers off. When a step fails:
# "WINARM-EVENT guest-writing-failed REASON" and the loop stops (the boot goes on). Without the file
# nothing is mounted read-write after `ready`.

/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

SEED_PATH=sources/winarm-seed.img
PANTHER=/mnt/sys/Windows/Panther
STATE=$PANTHER/winarm-state
DRIVER_STORE=/mnt/sys/Windows/System32/DriverStore/FileRepository

phase() {
    echo "WINARM-PHASE $*"
}

event() {
    echo "WINARM-EVENT $*"
}

# step NAME: a step of the Linux guest itself (init, ready, poweroff): a phase for the plain installer, an
# event when playing Windows (WINDOWS set), which has no serial console to say anything on.
WINDOWS=
step() {
    if [ -n "$WINDOWS" ]; then
        event "$@"
    else
        phase "$@"
    fi
}

die() {
    phase "error $*"
    sync
    poweroff -f
    sleep 5
    echo o >/proc/sysrq-trigger
    while :; do sleep 60; done
}

# wait_for PATH SECONDS: true once PATH exists, false after SECONDS.
wait_for() {
    n=0
    while [ ! -e "$1" ]; do
        [ "$n" -ge $(($2 * 10)) ] && return 1
        sleep 0.1
        n=$((n + 1))
    done
}

mount -t proc proc /proc || die "mount /proc"
mount -t sysfs sysfs /sys || die "mount /sys"
mount -t devtmpfs devtmpfs /dev || die "mount /dev"
exec </dev/console >/dev/console 2>&1
# Keep kernel messages off the console so that marker lines stay whole.
dmesg -n 1

for m in $(cat /etc/winarm-modules); do
    modprobe "$m" || die "modprobe $m"
done

boot=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        winarm.boot=*) boot="${arg#winarm.boot=}" ;;
    esac
done

# ------------------------------------------------------------------------------------------------
# Removable media

SEED=
ANSWER=
MARKER=
MOUNTED=" "

# usb_settled: true once every interface bound to usb-storage has the block device of its SCSI unit.
# usb-storage waits a second (delay_use) before its SCSI scan, far longer than enumerating the next
# device takes, so once the first CD has its block device every other one is bound and counted here.
usb_settled() {
    for intf in /sys/bus/usb/drivers/usb-storage/*:*; do
        [ -e "$intf" ] || continue
        set -- "$intf"/host*/target*/*/block/*
        [ -e "$1" ] || return 1
    done
    return 0
}

# note_medium DIR: remember what the medium mounted at DIR holds: the image to apply (SEED), an
# answer file at its root (ANSWER; any case, like Setup), the driver script's marker (MARKER: its root).
note_medium() {
    if [ -z "$SEED" ]; then
        if [ -f "$1/$SEED_PATH" ]; then
            SEED="$1/$SEED_PATH"
        elif [ -f "$1/seed.img" ]; then
            SEED="$1/seed.img"
        fi
    fi
    for f in "$1"/*; do
        [ -f "$f" ] || continue
        case "$(echo "${f##*/}" | tr 'A-Z' 'a-z')" in
            autounattend.xml) [ -n "$ANSWER" ] || ANSWER="$f" ;;
            winarm.marker) [ -n "$MARKER" ] || MARKER="$1" ;;
        esac
    done
}

# scan_media: mount every CD not mounted yet under /mnt/media/<dev> (UDF when it has a UDF tree, as
# Windows media do; else ISO 9660 with Joliet names) and note what it holds. False when a CD would
# not mount (not ready yet: the next scan tries again).
scan_media() {
    all=0
    for dev in /dev/sr*; do
        [ -b "$dev" ] || continue
        name="${dev##*/}"
        case "$MOUNTED" in *" $name "*) continue ;; esac
        dir="/mnt/media/$name"
        mkdir -p "$dir"
        if mount -t udf -o ro "$dev" "$dir" 2>/dev/null || mount -t iso9660 -o ro "$dev" "$dir" 2>/dev/null; then
            MOUNTED="$MOUNTED$name "
            note_medium "$dir"
        else
            all=1
        fi
    done
    return $all
}

# storage_settled: true once every USB mass-storage interface (class 08) the bus has enumerated has its block
# device: unlike usb_settled, also before usb-storage has bound any of them.
storage_settled() {
    for intf in /sys/bus/usb/devices/*:*; do
        [ "$(cat "$intf/bInterfaceClass" 2>/dev/null)" = 08 ] || continue
        set -- "$intf"/host*/target*/*/block/*
        [ -e "$1" ] || return 1
    done
    return 0
}

# settle_media SECONDS: what a logon script sees of the removable media: by a logon, Windows has long had every
# CD enumerated, while this guest may reach its logon within a second of booting, before usb-storage has bound
# the CDs (it waits a second first). So wait until every USB CD has its block device (at most SECONDS), scan once,
# and say whether the answer medium's marker is there (false, at once, when the medium is gone).
settle_media() {
    n=0
    until storage_settled || [ "$n" -ge $(($1 * 10)) ]; do
        sleep 0.1
        n=$((n + 1))
    done
    scan_media
    [ -n "$MARKER" ]
}

# find_media seed|marker SECONDS: scan the CDs until the seed (and every other CD, for at most 5 s more)
# or the driver medium's marker is found; false after SECONDS. Windows media without an answer file yet
# are given 5 s more from the seed on: under load a second USB CD can enumerate after the first one has
# settled (seen on a busy 2-core host), and Setup would find its Autounattend.xml there.
find_media() {
    n=0
    seed_at=
    while :; do
        if usb_settled; then
            scan_media
            complete=$?
            case "$1" in
                seed)
                    if [ -n "$SEED" ]; then
                        [ -n "$seed_at" ] || seed_at=$n
                        case "$SEED" in
                            */"$SEED_PATH") windows=1 ;;
                            *) windows= ;;
                        esac
                        if [ -n "$ANSWER" ] || [ -z "$windows" ]; then
                            { [ "$complete" = 0 ] || [ "$n" -ge 50 ]; } && return 0
                        elif [ $((n - seed_at)) -ge 50 ]; then
                            return 0
                        fi
                    fi
                    ;;
                marker) [ -n "$MARKER" ] && return 0 ;;
            esac
        fi
        [ "$n" -ge $(($2 * 10)) ] && return 1
        sleep 0.1
        n=$((n + 1))
    done
}

# ------------------------------------------------------------------------------------------------
# The answer file

# The awk programs live beside /init in the initramfs; answer-facts.awk, run-key-facts.awk and
# batch-facts.awk need the command-line functions of cmdline.awk loaded first.

# answer_facts FILE: print what the checks need from the unattend XML in FILE, one "key value" a line:
# unattend 1 (an <unattend> element), setup 1 (windowsPE has Microsoft-Windows-Setup), diskconfig 1 and
# imageinstall 1 (inside it), specialize 1 (a specialize RunSynchronousCommand whose Path runs
# install-drivers.cmd), hostslan 1 (a specialize RunSynchronousCommand whose Path adds "10.0.2.4
# host.lan" to ...\etc\hosts), guestauth 1 (one setting LanmanWorkstation AllowInsecureGuestAuth to
# 1), computername NAME (specialize), firstlogon 1 (an oobeSystem FirstLogonCommands SynchronousCommand
# whose CommandLine runs the driver script), per specialize RunSynchronousCommand the testbed executes,
# sorted by Order (stable): "sp ORDER copy |SRC|DEST|" (see copy_fact) and "sp ORDER drivers PASS" (see
# driver_fact), and per FirstLogonCommand the testbed executes, sorted by Order (stable): "fl ORDER
# drivers PASS", "fl ORDER share L: HOST NAME PERSISTENT [USER [PASSWORD]]" for `net[.exe] use L:
# \\HOST\NAME [PASSWORD] [/user:USER] [/switches]` (PERSISTENT 1 with /persistent:yes, else 0;
# netuse-bad ORDER when it cannot be read), "fl ORDER echo ..." (see echo_fact), "fl ORDER runkey ..."
# (see runkey_fact), "fl ORDER report ..." (see report_fact), "fl ORDER batch WAIT |SCRIPT|" (see batch_fact)
# and "fl ORDER task NAME |COMMAND|" (see task_fact). Comments are ignored; text is XML-unescaped (&amp; &lt; &gt; &quot; &apos; &#N;
# &#xH;); tag and file names compare as Setup does. net use lines are split at blanks, one pair of double
# quotes around a word is removed: a password with blanks, quotes or a leading "/" is not understood here
# (the host refuses blanks and quotes).
answer_facts() {
    awk -f /cmdline.awk -f /answer-facts.awk "$1"
}

# run_key_facts FILE: for each "NAME TYPE COMMAND" line of the Run-key file FILE (in its order) whose
# COMMAND the testbed executes: "rk NAME TYPE echo ..." (see echo_fact) or "rk NAME TYPE report ..." (see
# report_fact).
run_key_facts() {
    awk -f /cmdline.awk -f /run-key-facts.awk "$1"
}

# batch_facts FILE: what the testbed plays of the batch file FILE, a fact a line (see batch-facts.awk): the
# report script's runs, the share script's login, attempts and mappings, diskpart's script.
batch_facts() {
    awk -f /cmdline.awk -f /batch-facts.awk "$1"
}

# check_answer FILE: die with the reason unless FILE is an answer file Setup can install from; then set
# DRIVERS to the passes that run the driver script ("specialize", "firstlogon", both joined by "+",
# or "windowsPE" when none does: every driver then comes from $WinPEDriver$).
check_answer() {
    answer_facts "$1" >/tmp/answer.facts || die "cannot read the answer file"
    has() { grep -qx "$1 1" /tmp/answer.facts; }
    has unattend || die "answer file: no <unattend> element"
    has setup || die "answer file: windowsPE has no Microsoft-Windows-Setup component"
    has diskconfig || die "answer file: windowsPE Microsoft-Windows-Setup has no DiskConfiguration"
    has imageinstall || die "answer file: windowsPE Microsoft-Windows-Setup has no ImageInstall"
    DRIVERS=
    has specialize && DRIVERS=specialize
    has firstlogon && DRIVERS="${DRIVERS:+$DRIVERS+}firstlogon"
    [ -n "$DRIVERS" ] || DRIVERS=windowsPE
}

# ------------------------------------------------------------------------------------------------
# The system disk

# save_state NEXT: record the next pass (and DRIVERS) on the mounted system disk, durably.
save_state() {
    printf 'next=%s\ndrivers=%s\n' "$1" "$DRIVERS" >"$STATE.new" || die "writing the setup state"
    mv "$STATE.new" "$STATE" || die "writing the setup state"
    sync
}

# install_drivers PASS: what `install-drivers.cmd PASS` does: find the answer medium by its marker, then
# for each "<folder> <inf>" line of winarm/drivers.txt check the INF and copy the folder into the driver
# store (the network comes up as NetKVM arrives: Windows loads a driver for its device as it installs it);
# then, when the medium's install-drivers.cmd runs the report script, the "drivers" report (waited for).
install_drivers() {
    find_media marker 30 || die "drivers: no answer medium with winarm.marker for the driver script"
    manifest="$MARKER/winarm/drivers.txt"
    [ -f "$manifest" ] || die "drivers: no winarm/drivers.txt on the answer medium"
    mkdir -p "$DRIVER_STORE" /mnt/sys/Windows/Temp || die "drivers: cannot create the driver store"
    body=/mnt/sys/Windows/Temp/winarm-drivers-report.txt
    printf 'pass %s\r\n' "$1" >"$body" || die "drivers: cannot write $body"
    tr -d '\r' <"$manifest" >/tmp/drivers.txt
    while read -r folder inf; do
        case "$folder" in "" | "#"*) continue ;; esac
        src="$MARKER/winarm/drivers/$folder"
        [ -n "$inf" ] && [ -f "$src/$inf" ] || die "drivers: driver $folder: winarm/drivers/$folder/$inf missing"
        rm -rf "${DRIVER_STORE:?}/$folder"
        cp -r "$src" "$DRIVER_STORE/$folder" || die "drivers: copying driver $folder"
        sync
        printf 'driver %s 0\r\n' "$folder" >>"$body"
        event driver-installed "$folder"
        network_driver_installed && net_up
    done </tmp/drivers.txt
    sync
    script="$MARKER/winarm/install-drivers.cmd"
    [ -f "$script" ] || return 0
    batch_facts "$script" >/tmp/batch.facts || die "drivers: cannot read install-drivers.cmd"
    while read -r kind wait rest; do
        [ "$kind" = report ] || continue
        report_fields "$rest"
        [ "$R_NAME" = drivers ] && send_report 1 "$R_SCRIPT" drivers "$body" "$R_ATTEMPTS"
    done </tmp/batch.facts
}

# install_product_key ORDER: what the answer medium's winarm\product-key.cmd does: read the key from
# winarm/product-key.txt beside it and give it to `slmgr.vbs /ipk`, which the testbed plays: a key of the
# XXXXX-XXXXX-XXXXX-XXXXX-XXXXX form is installed (exit 0), any other refused with slmgr's "invalid product key"
# (0xC004F050, -1073418160 as cmd's ERRORLEVEL), no key file is "code missing"; then, when the script runs the
# report script, the "product-key" report with "code N" (started, not waited for, as the script does).
install_product_key() {
    find_media marker 30 || die "product key: no answer medium with winarm.marker"
    script="$MARKER/winarm/product-key.cmd"
    if [ ! -f "$script" ]; then
        event command-failed "$1" "product key: the answer medium has no winarm/product-key.cmd"
        return 0
    fi
    pk="$(tr -d '\r' <"$MARKER/winarm/product-key.txt" 2>/dev/null | head -n 1)"
    if [ -z "$pk" ]; then
        code=missing
    elif printf '%s\n' "$pk" | grep -Eq '^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$'; then
        code=0
    else
        code=-1073418160
    fi
    pk=
    mkdir -p /mnt/sys/Windows/Temp || die "product key: cannot create Windows\\Temp"
    body=/mnt/sys/Windows/Temp/winarm-product-key-report.txt
    printf 'code %s\r\n' "$code" >"$body" || die "product key: cannot write $body"
    batch_facts "$script" >/tmp/batch.facts || die "product key: cannot read product-key.cmd"
    while read -r kind wait rest; do
        [ "$kind" = report ] || continue
        report_fields "$rest"
        if [ "$R_NAME" = product-key ]; then
            send_report "$wait" "$R_SCRIPT" product-key "$body" "$R_ATTEMPTS"
            return 0
        fi
    done </tmp/batch.facts
}

# network_driver_installed: true when NetKVM is in the driver store (an INF named netkvm.inf, any case).
network_driver_installed() {
    [ -n "$(find "$DRIVER_STORE" -iname netkvm.inf 2>/dev/null | head -n 1)" ]
}

# ------------------------------------------------------------------------------------------------
# The host's shares (`net use`), the other FirstLogonCommands, the Run key

NET_UP=
LOGON=first-logon     # what the messages name: "logon" at the later boots
SHARES=/mnt/share     # where the shares are mounted: $SHARES/<name in lower case>
MAPPED=" "            # the shares mounted now, lower case: " data other "
FACTS=/tmp/logon.facts # the answer file's facts (answer_facts)
ANSWER_COPY=/tmp/unattend.xml # at later logons: the cached answer file, copied from the disk
RUN_KEYS=/mnt/sys/Windows/winarm-run-keys
CREDENTIALS=/mnt/sys/Windows/winarm-credentials # what cmdkey stored: "HOST USER PASSWORD" lines (Windows: the
                                                # user's credential vault)
MAPPINGS=/mnt/sys/Windows/winarm-mappings       # net use /persistent:yes: "L: HOST NAME" lines (HKCU\Network)
TASKS=/mnt/sys/Windows/winarm-tasks             # schtasks /create ... /sc onstart: "NAME COMMAND" lines
MAP_MAX_ATTEMPTS=10 # a share script's tries of one mapping, at most (the script: 20, 3 s apart)
MAP_PAUSE=0.5

lower() {
    printf '%s\n' "$1" | tr 'A-Z' 'a-z'
}

# net_up: load virtio_net, bring up eth0 (virtio-net on QEMU's user network) as 10.0.2.15/24 via
# 10.0.2.2 and mark it (/tmp/net-up, what reports sent in the background look at); once.
net_up() {
    [ -n "$NET_UP" ] && return 0
    modprobe virtio_net || die "$LOGON: modprobe virtio_net"
    wait_for /sys/class/net/eth0 10 || die "$LOGON: no network device eth0 (virtio-net)"
    ip link set lo up
    ip link set eth0 up || die "$LOGON: cannot bring eth0 up"
    n=0
    until [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ]; do
        [ "$n" -ge 100 ] && die "$LOGON: eth0 has no link after 10 s"
        sleep 0.1
        n=$((n + 1))
    done
    ip addr add 10.0.2.15/24 dev eth0 || die "$LOGON: cannot give eth0 its address"
    ip route add default via 10.0.2.2 || die "$LOGON: cannot add the default route"
    : >/tmp/net-up
    NET_UP=1
}

# cifs_up: load the cifs modules and the crypto it needs (not at every boot: they take over a second
# under TCG); once.
CIFS_UP=
cifs_up() {
    [ -n "$CIFS_UP" ] && return 0
    for m in $(cat /etc/winarm-share-modules); do
        modprobe "$m" || die "$LOGON: modprobe $m"
    done
    CIFS_UP=1
}

# ------------------------------------------------------------------------------------------------
# Reports through the guest channel (see the header)

REPORT_MAX_ATTEMPTS=40
REPORT_PAUSE=0.5
REPORT_GIVE_UP=20 # seconds: an unreachable address costs about 3 s an attempt (no ARP answer)
REPORT_JOBS= # the reports being sent in the background

# win_path PATH: the Linux path of the Windows path PATH (C:\..., %WINDIR%\... or %SystemRoot%\..., any
# case) on the Windows partition mounted at /mnt/sys, in WIN_PATH; false for any other form.
win_path() {
    p="$(printf '%s' "$1" | tr '\\' /)"
    case "$(lower "$p")" in
        %windir%/* | %systemroot%/*) p="/Windows/${p#*%/}" ;;
        c:/*) p="/${p#??/}" ;;
        *) return 1 ;;
    esac
    WIN_PATH="/mnt/sys$p"
}

# report_fields |SCRIPT|NAME|BODY|ATTEMPTS|: the fields of a report fact in R_SCRIPT, R_NAME, R_BODY and
# R_ATTEMPTS.
report_fields() {
    r="${1#|}"
    R_SCRIPT="${r%%|*}"
    r="${r#*|}"
    R_NAME="${r%%|*}"
    r="${r#*|}"
    R_BODY="${r%%|*}"
    r="${r#*|}"
    R_ATTEMPTS="${r%%|*}"
}

# send_report WAIT SCRIPT NAME BODYFILE ATTEMPTS: what `wscript //B //NoLogo SCRIPT NAME BODY ATTEMPTS`
# does (SCRIPT a Windows path, BODYFILE a file here or ""): the URL read from the script on the disk now,
# then the report posted (post_report), in the background unless WAIT is 1. False when it cannot start.
send_report() {
    if ! win_path "$2" || [ ! -f "$WIN_PATH" ]; then
        event report-failed "$3" "no report script $2"
        return 1
    fi
    url="$(sed -n 's/^[^"]*"\(http:\/\/[^"]*\)".*/\1/p' "$WIN_PATH" | head -n 1)"
    if [ -z "$url" ]; then
        event report-failed "$3" "no http:// URL in $2"
        return 1
    fi
    tries="$5"
    case "$tries" in "" | *[!0-9]*) tries=60 ;; esac
    [ "$tries" -gt "$REPORT_MAX_ATTEMPTS" ] && tries=$REPORT_MAX_ATTEMPTS
    [ "$tries" -lt 1 ] && tries=1
    rbody="/tmp/report-body.$3"
    if [ -n "$4" ]; then
        cp "$4" "$rbody" || die "report $3: cannot read its body $4"
    else
        : >"$rbody"
    fi
    if [ "$1" = 1 ]; then
        post_report "$3" "$url$3" "$rbody" "$tries"
    else
        post_report "$3" "$url$3" "$rbody" "$tries" </dev/null &
        REPORT_JOBS="$REPORT_JOBS $!"
    fi
    return 0
}

# post_report NAME URL BODYFILE ATTEMPTS: POST BODYFILE to URL until it is taken, ATTEMPTS times at most,
# REPORT_PAUSE s apart; "WINARM-EVENT report-sent NAME" or "WINARM-EVENT report-failed NAME REASON".
post_report() {
    i=1
    since="$(date +%s)"
    while :; do
        if [ ! -e /tmp/net-up ]; then
            why="no network driver"
        elif timeout 5 wget -q -O /dev/null --post-file="$3" "$2" 2>"/tmp/wget.$1.err"; then
            event report-sent "$1"
            return 0
        else
            why="$(tail -n 1 "/tmp/wget.$1.err")"
            why="${why:-wget failed}"
        fi
        [ "$i" -ge "$4" ] && break
        [ $(($(date +%s) - since)) -ge "$REPORT_GIVE_UP" ] && break
        i=$((i + 1))
        sleep "$REPORT_PAUSE"
    done
    event report-failed "$1" "$why"
    return 1
}

# wait_reports: wait for the reports sent in the background to be sent or given up.
wait_reports() {
    for pid in $REPORT_JOBS; do
        wait "$pid"
    done
    REPORT_JOBS=
}

# run_report ORDER WAIT |SCRIPT|NAME|BODY|ATTEMPTS|: a FirstLogonCommand that sends a report (BODY a Windows
# path, %WINDIR% expanded by cmd or by Setup); "WINARM-EVENT command-failed ORDER REASON" when BODY is missing.
run_report() {
    report_fields "$3"
    file=
    if [ -n "$R_BODY" ]; then
        if ! win_path "$R_BODY" || [ ! -f "$WIN_PATH" ]; then
            event command-failed "$1" "report $R_NAME: no body file $R_BODY"
            return 0
        fi
        file="$WIN_PATH"
    fi
    send_report "$2" "$R_SCRIPT" "$R_NAME" "$file" "$R_ATTEMPTS" || :
}

# share_steps DIR TEXT: what a Windows user does on a mapped drive: nested folders, a file written,
# renamed, overwritten, a scratch file created and deleted. Error messages go to stderr.
share_steps() {
    base="$1/winarm-testbed/first-logon"
    mkdir -p "$base" &&
        echo "$2" >"$base/hello.txt" &&
        mv -f "$base/hello.txt" "$base/hello-renamed.txt" &&
        echo "$2 (written again after the rename)" >"$base/hello-renamed.txt" &&
        echo scratch >"$base/scratch.tmp" &&
        rm -f "$base/scratch.tmp"
}

# mount_share NAME USER PASSWORD: mount //10.0.2.4/NAME (QEMU forwards 10.0.2.4:445 to the host's smbd)
# at $SHARES/<name> (a guest login when USER is empty) and add it to MAPPED; false with the reason
# in MOUNT_ERR. Busybox mount has no cifs helper: it passes ip= and unc= on, and the kernel needs both
# (no DNS).
mount_share() {
    if [ -n "$2" ]; then
        # A comma ends a mount option. cifs reads ",," as a comma, but busybox mount drops the empty
        # option between them: such a password cannot be passed here (Windows would take it).
        case "$2$3" in
            *,*)
                MOUNT_ERR="the testbed cannot mount with a user name or password holding ','"
                return 1
                ;;
        esac
        cred="username=$2,password=$3"
    else
        cred="username=guest,password="
    fi
    net_up
    cifs_up
    lname="$(lower "$1")"
    mkdir -p "$SHARES/$lname"
    if ! mount -t cifs -o "vers=3.1.1,ip=10.0.2.4,unc=\\\\10.0.2.4\\$1,$cred" "//10.0.2.4/$1" "$SHARES/$lname" \
        </dev/null 2>/tmp/mount.err; then
        MOUNT_ERR="mount failed: $(tail -n 1 /tmp/mount.err)"
        return 1
    fi
    MAPPED="$MAPPED$lname "
}

# unmount_shares: unmount every share mounted (at the end of the logon's commands).
unmount_shares() {
    for lname in $MAPPED; do
        umount "$SHARES/$lname" 2>/tmp/mount.err || die "share $lname: umount failed: $(tail -n 1 /tmp/mount.err)"
    done
    MAPPED=" "
}

# use_share NAME USER PASSWORD: `net use` of \\host.lan\NAME: mounted (it stays mounted to the end of the
# first logon's commands, as a mapped drive stays connected), written to.
use_share() {
    lname="$(lower "$1")"
    case "$MAPPED" in
        *" $lname "*) ;; # mapped under another letter already
        *) mount_share "$1" "$2" "$3" || die "share $1: $MOUNT_ERR" ;;
    esac
    event share-mounted "$1"
    if share_steps "$SHARES/$lname" "hello from ${COMPUTER:-WINARM-TESTBED}" </dev/null 2>/tmp/share.err; then
        sync
        event share-written "$1" winarm-testbed/first-logon/hello-renamed.txt
    elif grep -qi -e "permission denied" -e "read-only file system" /tmp/share.err; then
        event share-readonly "$1"
    else
        die "share $1: writing failed: $(tail -n 1 /tmp/share.err)"
    fi
}

# share_reachable HOST NAME USER: true when Windows could log on to \\HOST\NAME (as USER, or as a guest when
# USER is empty): it resolves host.lan only when a specialize command has put it in its hosts file and, like
# Windows 11 24H2, refuses a guest logon unless specialize set AllowInsecureGuestAuth (the cached answer file's
# facts stand for that state). False with the reason in CMD_ERR.
share_reachable() {
    [ -f "$FACTS" ] || answer_facts "$ANSWER_COPY" >"$FACTS" 2>/dev/null || : >"$FACTS"
    case "$(lower "$1")" in
        host.lan)
            if ! grep -qx "hostslan 1" "$FACTS"; then
                CMD_ERR="\\\\host.lan cannot be resolved (no specialize command adds it to the hosts file)"
                return 1
            fi
            ;;
        10.0.2.4) ;;
        *)
            CMD_ERR="\\\\$1: the testbed reaches shares at \\\\host.lan (10.0.2.4) only"
            return 1
            ;;
    esac
    if [ -z "$3" ] && ! grep -qx "guestauth 1" "$FACTS"; then
        CMD_ERR="\\\\$1\\$2: a guest logon, refused without AllowInsecureGuestAuth (as Windows 11 24H2 does)"
        return 1
    fi
}

# credential_of HOST: the login cmdkey stored for HOST (CREDENTIALS) in CRED_USER and CRED_PASS, empty without one.
credential_of() {
    CRED_USER=
    CRED_PASS=
    [ -f "$CREDENTIALS" ] || return 0
    while read -r c_host c_user c_pass; do
        [ "$(lower "$c_host")" = "$(lower "$1")" ] || continue
        CRED_USER="$c_user"
        CRED_PASS="$c_pass"
    done <"$CREDENTIALS"
}

# map_share L: HOST NAME PERSISTENT [USER [PASSWORD]]: a `net use` FirstLogonCommand (an answer file from before
# the share script: its login, if any, is remembered as cmdkey would); the share mounted and written to.
map_share() {
    share_reachable "$2" "$3" "$5" || die "share $3: net use $1 \\\\$2\\$3: $CMD_ERR"
    [ -z "$5" ] || set_line "$CREDENTIALS" "$2" "$2 $5 $6"
    use_share "$3" "$5" "$6"
}

# share_server: true when something answers at 10.0.2.4. QEMU answers ARP for it only when it forwards it to a
# share server: without one (winarm run without a shared folder) a mount would fail only after ~6 s (ARP
# timeouts). False with the reason in CMD_ERR.
share_server() {
    net_up
    arping -q -f -c 1 -w 1 -I eth0 10.0.2.4 </dev/null >/dev/null 2>&1 && return 0
    CMD_ERR="the network path was not found (nothing answers at 10.0.2.4: no share server)"
    return 1
}

# connect_share HOST NAME: what a use of \\HOST\NAME does (a file written there): an SMB session with the login
# cmdkey stored for HOST, else as a guest ("WINARM-EVENT share-reconnected NAME"); the share stays mounted to
# the end of the logon. False with the reason in CMD_ERR when Windows could not reach it or the mount fails.
connect_share() {
    credential_of "$1"
    share_reachable "$1" "$2" "$CRED_USER" || return 1
    share_server || return 1
    if ! mount_share "$2" "$CRED_USER" "$CRED_PASS"; then
        CMD_ERR="\\\\$1\\$2: $MOUNT_ERR"
        return 1
    fi
    event share-reconnected "$2"
}

# share_script FACTS: what the share script (winarm-map-shares.cmd; its batch facts in the file FACTS) does:
# with a "login" and a "cmdkey" fact, the login file read from the answer medium (found by its marker at once:
# it is there during the install only) and stored as cmdkey would ("WINARM-EVENT share-login-stored HOST
# USER"); then each "map" fact (map_drive), tried up to its "attempts" (at most MAP_MAX_ATTEMPTS).
share_script() {
    attempts="$(sed -n 's/^attempts //p' "$1" | head -n 1)"
    case "$attempts" in "" | *[!0-9]*) attempts=1 ;; esac
    [ "$attempts" -gt "$MAP_MAX_ATTEMPTS" ] && attempts=$MAP_MAX_ATTEMPTS
    login="$(sed -n 's/^login |\(.*\)|$/\1/p' "$1" | head -n 1)"
    host="$(sed -n 's/^cmdkey //p' "$1" | head -n 1)"
    if [ -n "$login" ] && [ -n "$host" ] && { [ -n "$MARKER" ] || settle_media 10; } &&
        [ -f "$MARKER/$login" ]; then
        read -r l_user l_pass <"$MARKER/$login"
        l_pass="$(printf '%s' "$l_pass" | tr -d '\r')"
        set_line "$CREDENTIALS" "$host" "$host $l_user $l_pass"
        event share-login-stored "$host" "$l_user"
    fi
    while read -r kind letter host name <&4; do
        [ "$kind" = map ] && map_drive "$letter" "$host" "$name" "$attempts"
    done 4<"$1"
}

# map_drive L: HOST NAME ATTEMPTS: the share script's `:map`: nothing when the share is connected already ("if
# exist L:\"; "WINARM-EVENT share-connected NAME"), else `net use L: \\HOST\NAME /persistent:yes` with the
# stored login (or as a guest) until it works, ATTEMPTS times at most, MAP_PAUSE s apart ("WINARM-EVENT
# share-map-retried NAME N" when it took N tries, "WINARM-EVENT share-map-failed NAME REASON" when it never
# did; a share server that does not answer ends the tries at once). At the first logon the share is then
# written to (use_share), at later logons "WINARM-EVENT share-reconnected NAME".
map_drive() {
    case "$MAPPED" in
        *" $(lower "$3") "*)
            event share-connected "$3"
            return 0
            ;;
    esac
    credential_of "$2"
    if ! share_reachable "$2" "$3" "$CRED_USER"; then
        event share-map-failed "$3" "$CMD_ERR"
        return 0
    fi
    i=1
    while :; do
        if ! share_server; then
            event share-map-failed "$3" "$CMD_ERR"
            return 0
        fi
        mount_share "$3" "$CRED_USER" "$CRED_PASS" && break
        if [ "$i" -ge "$4" ]; then
            event share-map-failed "$3" "$MOUNT_ERR (tried $i times)"
            return 0
        fi
        i=$((i + 1))
        sleep "$MAP_PAUSE"
    done
    [ "$i" = 1 ] || event share-map-retried "$3" "$i"
    if [ "$LOGON" = first-logon ]; then
        use_share "$3"
    else
        event share-reconnected "$3"
    fi
}

# run_batch WHAT |SCRIPT|: a batch file on C: run by a FirstLogonCommand, a Run value or a task (WHAT names it
# in messages): what the testbed plays of it (batch_facts): the share script (share_script) and diskpart
# scripts (run_diskpart; %~dp0 is the batch file's folder). "WINARM-EVENT command-failed WHAT REASON" when
# SCRIPT is missing.
run_batch() {
    r="${2#|}"
    script="${r%%|*}"
    if ! win_path "$script" || [ ! -f "$WIN_PATH" ]; then
        event command-failed "$1" "no batch file $script"
        return 0
    fi
    batch_facts "$WIN_PATH" >/tmp/run-batch.facts || die "$LOGON: cannot read $script"
    grep -q "^map " /tmp/run-batch.facts && share_script /tmp/run-batch.facts
    sed -n 's/^diskpart |\(.*\)|$/\1/p' /tmp/run-batch.facts >/tmp/run-batch.diskpart
    while IFS= read -r dp <&4; do
        case "$dp" in %~dp0*) dp="${script%\\*}\\${dp#%~dp0}" ;; esac
        if ! win_path "$dp" || [ ! -f "$WIN_PATH" ]; then
            event command-failed "$1" "diskpart /s: no script $dp"
            continue
        fi
        run_diskpart "$WIN_PATH"
    done 4</tmp/run-batch.diskpart
}

# run_diskpart FILE: `diskpart /s FILE` for the commands the testbed plays: `select volume C`, then `extend`
# (extend_c); REM lines and blank ones skipped; "WINARM-EVENT diskpart-failed REASON" for anything else.
run_diskpart() {
    selected=
    tr -d '\r' <"$1" >/tmp/diskpart.txt
    while read -r words; do
        # shellcheck disable=SC2086 # split on purpose: diskpart's own blanks do not matter
        words="$(lower "$(echo $words)")"
        case "$words" in
            "" | "rem" | "rem "*) ;;
            "select volume c") selected=c ;;
            extend)
                if [ "$selected" = c ]; then
                    extend_c
                else
                    event diskpart-failed "extend: no volume selected"
                fi
                ;;
            *) event diskpart-failed "not played: $words" ;;
        esac
    done </tmp/diskpart.txt
}

# extend_c: diskpart's `extend` of C: (the Windows partition, partition 2, the last one) on its GPT: with
# unallocated space after it, its entry made to end at the disk's last usable LBA and the GPT's backup moved to
# the disk's end (gpt-extend.awk works out the bytes; the backup written first, the primary last). The FAT file
# system inside keeps its size (the testbed has no FAT resizer: Windows' NTFS grows with its partition).
# "WINARM-EVENT volume-extended C: OLD NEW" (the partition's sizes in MiB) or "WINARM-EVENT
# volume-not-extended C: REASON".
extend_c() {
    last=$(($(blockdev --getsz /dev/vda) - 1))
    if ! dd if=/dev/vda of=/tmp/gpt.bin bs=512 count=34 2>/tmp/dd.err; then
        event volume-not-extended C: "reading the GPT: $(tail -n 1 /tmp/dd.err)"
        return 0
    fi
    hexdump -v -C /tmp/gpt.bin | awk -f /gpt-extend.awk -v last="$last" -v part=2 >/tmp/gpt.plan
    read -r what first old new esec </tmp/gpt.plan
    if [ "$what" != extend ]; then
        event volume-not-extended C: "$(sed -n '1s/^none //p' /tmp/gpt.plan)"
        return 0
    fi
    gpt_patch p /tmp/gpt.bin
    dd if=/tmp/gpt.bin of=/tmp/gpt-backup.bin bs=512 skip=1 count=1 2>/dev/null
    gpt_patch b /tmp/gpt-backup.bin
    dd if=/tmp/gpt.bin of=/dev/vda bs=512 skip=2 seek=$((last - esec)) count="$esec" conv=fsync 2>/tmp/dd.err &&
        dd if=/tmp/gpt-backup.bin of=/dev/vda bs=512 seek="$last" count=1 conv=fsync 2>/tmp/dd.err &&
        dd if=/tmp/gpt.bin of=/dev/vda bs=512 count=34 conv=fsync 2>/tmp/dd.err ||
        die "extending C: writing the GPT: $(tail -n 1 /tmp/dd.err)"
    event volume-extended C: $(((old - first + 1) / 2048)) $(((new - first + 1) / 2048))
}

# gpt_patch KIND FILE: the plan's patches of KIND (p or b) applied to FILE, in order.
gpt_patch() {
    while read -r kind off bytes; do
        [ "$kind" = "$1" ] || continue
        # shellcheck disable=SC2059 # the bytes are octal escapes for printf to turn into bytes
        printf "$bytes" | dd of="$2" bs=1 seek="$off" conv=notrunc 2>/dev/null || die "extending C: patching $2"
    done </tmp/gpt.plan
}

# run_echo FACT: cmd's `echo TEXT>TARGET` for an echo fact (see echo_fact): TEXT on the console (COM1,
# the serial port), or TEXT and CRLF written to a file on a share, mounted already or connected now
# (connect_share). False with the reason in CMD_ERR, as the command fails.
run_echo() {
    case "$1" in
        "com1 |"*)
            # Windows for ARM64 under QEMU has no COM port (the PL011 has no driver)
            CMD_ERR="COM1: The system cannot find the file specified (no COM port)"
            return 1
            ;;
        "unc "*)
            rest="${1#unc }"
            host="${rest%% *}"
            rest="${rest#* }"
            share="${rest%% *}"
            rest="${rest#* |}"
            path="${rest%%|*}"
            text="${rest#*|}"
            text="${text%|}"
            case "$(lower "$host")" in
                host.lan | 10.0.2.4) ;;
                *)
                    CMD_ERR="\\\\$host: the testbed reaches shares at \\\\host.lan (10.0.2.4) only"
                    return 1
                    ;;
            esac
            case "$MAPPED" in
                *" $(lower "$share") "*) ;;
                *) connect_share "$host" "$share" || return 1 ;;
            esac
            if ! { printf '%s\r\n' "$text" >"$SHARES/$(lower "$share")/$path"; } 2>/tmp/echo.err; then
                err="$(tail -n 1 /tmp/echo.err)"
                CMD_ERR="\\\\$host\\$share\\$(printf '%s' "$path" | tr / '\\'): ${err##*: }"
                return 1
            fi
            event share-file-written "$share" "$path"
            ;;
        *)
            CMD_ERR="unknown echo form"
            return 1
            ;;
    esac
}

# set_line FILE KEY LINE: LINE in FILE on the system disk, replacing the line whose first word is KEY (compared
# case-insensitively) in place, else appended; nothing written when it is there already. The Windows partition
# is made writable for the write when it is mounted read-only (a later logon), then read-only again.
set_line() {
    lkey="$(lower "$2")"
    if [ -f "$1" ] && grep -qxF "$3" "$1"; then
        return 0
    fi
    ro=
    if grep -q " /mnt/sys vfat ro," /proc/mounts; then
        mount -o remount,rw /mnt/sys || die "$LOGON: cannot write the Windows partition"
        ro=1
    fi
    replaced=
    {
        if [ -f "$1" ]; then
            while IFS= read -r line; do
                if [ "$(lower "${line%% *}")" = "$lkey" ]; then
                    [ -n "$replaced" ] || printf '%s\n' "$3"
                    replaced=1
                else
                    printf '%s\n' "$line"
                fi
            done <"$1"
        fi
        [ -n "$replaced" ] || printf '%s\n' "$3"
    } >"$1.new" || die "$LOGON: writing $1"
    mv "$1.new" "$1" || die "$LOGON: writing $1"
    sync
    [ -z "$ro" ] || mount -o remount,ro /mnt/sys || die "$LOGON: cannot remount the Windows partition read-only"
}

# set_run_key NAME TYPE COMMAND: `reg add` of the Run value NAME: one "NAME TYPE COMMAND" line in RUN_KEYS on
# the (rw) system disk, replacing a value of that name (names compare case-insensitively) in place.
set_run_key() {
    set_line "$RUN_KEYS" "$1" "$1 $2 $3"
}

# first_logon_commands: the FirstLogonCommands the testbed executes, by Order: the driver script
# (install_drivers), a report (run_report), `net use` (map_share; the shares stay mounted to the end),
# `cmd /c echo TEXT>COM1` or `>\\host.lan\SHARE\FILE` (run_echo; a failure is "WINARM-EVENT command-failed
# ORDER REASON" and the next command runs, as after a failing cmd), `reg add` of a Run value (set_run_key:
# run at the next logons, not this one), a batch file (run_batch: the share script, diskpart), `schtasks
# /create ... /sc onstart /ru SYSTEM` (kept in TASKS, "WINARM-EVENT task-added NAME": run at the next starts).
# Any other command is ignored.
first_logon_commands() {
    answer_facts "$PANTHER/unattend.xml" >"$FACTS" || die "first-logon: cannot read the cached answer file"
    bad="$(sed -n 's/^netuse-bad //p' "$FACTS" | head -n 1)"
    [ -z "$bad" ] || die "first-logon: FirstLogonCommands Order $bad: a net use this testbed cannot read"
    COMPUTER="$(sed -n 's/^computername //p' "$FACTS" | head -n 1)"
    while read -r key order kind rest <&3; do
        [ "$key" = fl ] || continue
        case "$kind" in
            share)
                set -f
                # shellcheck disable=SC2086 # L: HOST NAME PERSISTENT [USER [PASSWORD]]
                set -- $rest
                set +f
                map_share "$@"
                ;;
            echo) run_echo "$rest" || event command-failed "$order" "$CMD_ERR" ;;
            runkey)
                name="${rest%% *}"
                type="${rest#* }"
                data="${rest#* |}"
                set_run_key "$name" "${type%% *}" "${data%|}"
                event run-key-added "$name"
                ;;
            drivers) install_drivers "$rest" ;;
            productkey) install_product_key "$order" ;;
            report) run_report "$order" "${rest%% *}" "${rest#* }" ;;
            batch) run_batch "$order" "${rest#* }" ;;
            task)
                name="${rest%% *}"
                data="${rest#* |}"
                set_line "$TASKS" "$name" "$name ${data%|}"
                event task-added "$name"
                ;;
        esac
    done 3<"$FACTS"
    unmount_shares
}

# run_keys: what a later logon does with the machine's Run key (/tmp/run-keys, copied from the disk):
# each value's command the testbed knows, in order: echo (see run_echo; shares reconnected as needed and
# unmounted after), reports (started, not waited for; the Windows partition mounted read-only while
# they start) and batch files (run_batch, run to their end); "WINARM-EVENT run-key-failed NAME REASON" for one
# that fails.
run_keys() {
    [ -s /tmp/run-keys ] || return 0
    LOGON=logon
    run_key_facts /tmp/run-keys >/tmp/run-keys.facts || die "logon: cannot read the Run key"
    mount -t vfat -o ro /dev/vda2 /mnt/sys || die "logon: cannot mount the Windows partition"
    while read -r key name type kind rest <&3; do
        case "$key $kind" in
            "rk echo") run_echo "$rest" || event run-key-failed "$name" "$CMD_ERR" ;;
            "rk report") run_key_report "$name" "$type" "${rest#* }" ;;
            "rk batch")
                case "$type ${rest#* }" in
                    "reg_sz "*%*%*) event run-key-failed "$name" "a REG_SZ value: ${rest#* } is not expanded" ;;
                    *) run_batch "$name" "${rest#* }" ;;
                esac
                ;;
        esac
    done 3</tmp/run-keys.facts
    umount /mnt/sys || die "logon: cannot unmount the Windows partition"
    unmount_shares
}

# run_tasks: what Windows' start does with the scheduled tasks run at start as SYSTEM (/tmp/tasks, copied from
# the disk; before any logon): each task's command that is a batch file, run to its end (run_batch).
run_tasks() {
    [ -s /tmp/tasks ] || return 0
    LOGON=start
    mount -t vfat -o ro /dev/vda2 /mnt/sys || die "start: cannot mount the Windows partition"
    while read -r name command <&3; do
        command="${command#\"}"
        run_batch "task $name" "|${command%\"}|"
    done 3</tmp/tasks
    umount /mnt/sys || die "start: cannot unmount the Windows partition"
}

# run_key_report NAME TYPE |SCRIPT|NAME|BODY|ATTEMPTS|: the Run value NAME of TYPE that sends a report:
# %WINDIR% and the like are expanded only in a REG_EXPAND_SZ value.
run_key_report() {
    report_fields "$3"
    case "$2 $R_SCRIPT$R_BODY" in
        "reg_sz "*%*%*)
            event run-key-failed "$1" "a REG_SZ value: $R_SCRIPT is not expanded"
            return 0
            ;;
    esac
    file=
    if [ -n "$R_BODY" ]; then
        if ! win_path "$R_BODY" || [ ! -f "$WIN_PATH" ]; then
            event run-key-failed "$1" "no body file $R_BODY"
            return 0
        fi
        file="$WIN_PATH"
    fi
    send_report 0 "$R_SCRIPT" "$R_NAME" "$file" "$R_ATTEMPTS" || event run-key-failed "$1" "report $R_NAME"
}

# ------------------------------------------------------------------------------------------------
# Boot from the CD

apply_seed() {
    wait_for /dev/vda 30 || die "no virtio disk /dev/vda"
    dd if="$SEED" of=/dev/vda bs=1M oflag=direct conv=fsync 2>/tmp/dd.err ||
        die "writing /dev/vda: $(tail -n 1 /tmp/dd.err)"
    sync
}

# apply_wim FILE: the rest of the image apply: FILE (install.wim, whole MiB) written onto /dev/vda from the
# seed's end, into the Windows partition's free space; the seed and FILE are what TOTALBYTES counts.
apply_wim() {
    dd if="$1" of=/dev/vda bs=1M seek=$(($(stat -c %s "$SEED") / 1048576)) oflag=direct conv=fsync \
        2>/tmp/dd.err || die "applying $1 to /dev/vda: $(tail -n 1 /tmp/dd.err)"
}

setup_from_cd() {
    phase setup
    apply_seed
    phase setup-done
    reboot -f
    die "reboot -f returned"
}

# hang_if_asked: the stall watch's test (sources/winarm-hang on the install CD): say so, then do nothing more
# (no disk I/O, no output; the console cursor stops blinking, so the screen stays the same).
hang_if_asked() {
    [ -f "${SEED%/*}/winarm-hang" ] || return 0
    event hang
    echo 0 >/sys/class/graphics/fbcon/cursor_blink 2>/dev/null
    while :; do sleep 3600; done
}

windows_pe() {
    hang_if_asked
    check_answer "$ANSWER"
    root="${ANSWER%/*}"
    WINPE_DRIVERS=
    for dir in "$root"/*; do
        [ -d "$dir" ] || continue
        [ "$(echo "${dir##*/}" | tr 'A-Z' 'a-z')" = '$winpedriver$' ] || continue
        for drv in "$dir"/*; do
            [ -d "$drv" ] || continue
            event winpe-driver "${drv##*/}"
            WINPE_DRIVERS="$WINPE_DRIVERS $drv"
        done
    done
    case "$SEED" in
        */"$SEED_PATH") ;;
        *) die "the install medium has no $SEED_PATH (not the Windows test ISO)" ;;
    esac
    [ -f "${SEED%/*}/install.wim" ] || die "the install medium has no sources/install.wim"
    apply_seed
    apply_wim "${SEED%/*}/install.wim"
    blockdev --rereadpt /dev/vda || die "re-reading the partition table of /dev/vda"
    wait_for /dev/vda2 10 || die "the applied image has no Windows partition /dev/vda2"
    mkdir -p /mnt/sys
    mount -t vfat /dev/vda2 /mnt/sys || die "mounting the Windows partition"
    mkdir -p "$PANTHER" || die "creating $PANTHER"
    cp "$ANSWER" "$PANTHER/unattend.xml" || die "caching the answer file"
    mkdir -p "$DRIVER_STORE" || die "creating the driver store"
    for drv in $WINPE_DRIVERS; do
        cp -r "$drv" "$DRIVER_STORE/" || die "adding ${drv##*/} to the driver store"
    done
    save_state specialize
    umount /mnt/sys || die "unmounting the Windows partition"
    sync
    reboot -f
    die "reboot -f returned"
}

# ------------------------------------------------------------------------------------------------
# The disk check (fsck) and the write load

WRITE_LOAD=/mnt/sys/Windows/winarm-write-load.txt # the host's request for the write load
LOAD_DIR=/mnt/sys/winarm-write-load                # where the load writes
LOAD=                                              # set when the request was found
LOAD_PID=

# is_fat DEVICE: true when DEVICE holds a FAT file system ("FAT" at offset 54, FAT12/16, or 82, FAT32).
is_fat() {
    [ "$(dd if="$1" bs=1 skip=54 count=3 2>/dev/null)" = FAT ] ||
        [ "$(dd if="$1" bs=1 skip=82 count=3 2>/dev/null)" = FAT ]
}

# fsck_findings FILE: what fsck.fat printed in FILE, on one line ("finding; finding"): its banner, the
# closing counts and its notes on what it did (or, with -n, did not do) left out.
fsck_findings() {
    awk -f /fsck-findings.awk "$1"
}

# fsck_pass -n|-a: run fsck.fat with that option on each FAT partition of /dev/vda; FOUND lists what the
# partitions with findings showed ("vda2: ...; ... / vda1: ..."), FOUND_PARTS their names, FAILED what
# could not be checked.
fsck_pass() {
    FOUND=
    FOUND_PARTS=
    FAILED=
    for part in /dev/vda[0-9]*; do
        [ -b "$part" ] && is_fat "$part" || continue
        fsck.fat "$1" "$part" </dev/null >/tmp/fsck.out 2>&1
        rc=$?
        [ "$rc" = 0 ] && continue
        if [ "$rc" = 1 ]; then
            FOUND="${FOUND:+$FOUND / }${part#/dev/}: $(fsck_findings /tmp/fsck.out)"
            FOUND_PARTS="${FOUND_PARTS:+$FOUND_PARTS }${part#/dev/}"
        else
            FAILED="${FAILED:+$FAILED / }${part#/dev/}: exit $rc: $(tail -n 1 /tmp/fsck.out)"
        fi
    done
}

# fsck_disks: the disk check (see the header): read-only first; on findings a repair and a second check.
fsck_disks() {
    fsck_pass -n
    if [ -n "$FAILED" ]; then
        event fsck failed "$FAILED"
        return 0
    fi
    if [ -z "$FOUND" ]; then
        event fsck clean
        return 0
    fi
    event fsck errors "$FOUND"
    repaired="$FOUND_PARTS"
    fsck_pass -a
    # fsck.fat writes through the page cache of the partition and closing it writes back but does not
    # flush the disk's write cache (QEMU's, for a qcow2 image): fsync each repaired partition, so that the
    # repair survives a crash right after it
    for part in $repaired; do
        sync "/dev/$part"
    done
    fsck_pass -n
    if [ -z "$FOUND$FAILED" ]; then
        event fsck repaired "$repaired"
    else
        event fsck unrepaired "$FOUND${FAILED:+ / $FAILED}"
    fi
}

# write_load: the loop of the write load (see the header), in the background until /tmp/write-load.stop
# exists; on a failing step "WINARM-EVENT guest-writing-failed REASON" and the end.
write_load() {
    load_step() {
        "$@" 2>/tmp/write-load.err && return 0
        event guest-writing-failed "$*: $(tail -n 1 /tmp/write-load.err)"
        exit 1
    }
    load_file() { # load_file CHUNKS FILE: FILE written anew with CHUNKS copies of the chunk
        : >"$2" || return 1
        c=0
        while [ "$c" -lt "$1" ]; do
            cat /tmp/write-load.chunk >>"$2" || return 1
            c=$((c + 1))
        done
    }
    load_append() { cat /tmp/write-load.chunk >>"$1"; }
    load_note() { echo "step $2" >"$1"; }
    # non-zero data: QEMU turns blocks of zeros into zero writes (detect-zeroes), not data
    head -c 65536 /dev/urandom >/tmp/write-load.chunk
    load_step mkdir -p "$LOAD_DIR"
    i=0
    while [ ! -e /tmp/write-load.stop ]; do
        i=$((i + 1))
        load_step load_file $((1 + i % 8)) "$LOAD_DIR/new.tmp"
        load_step mv -f "$LOAD_DIR/new.tmp" "$LOAD_DIR/file$((i % 8)).bin"
        load_step rm -f "$LOAD_DIR/file$(((i + 3) % 8)).bin"
        if [ -f "$LOAD_DIR/log.bin" ] && [ "$(stat -c %s "$LOAD_DIR/log.bin")" -gt 2097152 ]; then
            load_step rm -f "$LOAD_DIR/log.bin"
        fi
        load_step load_append "$LOAD_DIR/log.bin" # there to be fsynced below
        load_step mkdir -p "$LOAD_DIR/dir$((i % 4))"
        load_step load_note "$LOAD_DIR/dir$((i % 4))/note$((i % 5)).txt" "$i"
        if [ $((i % 5)) = 0 ]; then
            # sync writes back, and fsync flushes the disk's write cache too (vfat has no sync_fs: sync alone
            # never does)
            sync
            load_step sync "$LOAD_DIR/log.bin"
        fi
    done
    exit 0
}

# start_write_load: when the host asked for it (LOAD), mount the Windows partition read-write and start
# the write load in the background.
start_write_load() {
    [ -n "$LOAD" ] || return 0
    if ! mount -t vfat /dev/vda2 /mnt/sys 2>/tmp/mount.err; then
        event guest-writing-failed "mounting the Windows partition: $(tail -n 1 /tmp/mount.err)"
        return 0
    fi
    rm -f /tmp/write-load.stop
    event guest-writing vda2
    write_load </dev/null &
    LOAD_PID=$!
}

# stop_write_load: end the write load (its current step first) and unmount the partition.
stop_write_load() {
    [ -n "$LOAD_PID" ] || return 0
    touch /tmp/write-load.stop
    wait "$LOAD_PID"
    LOAD_PID=
    umount /mnt/sys || event guest-writing-failed "unmounting the Windows partition"
    sync /dev/vda2 # unmounting writes back; this flushes the disk's write cache too
}

# ------------------------------------------------------------------------------------------------
# Boot from the disk

# arm_power_button: start reading the power button, so that a press from now on is not lost (the host
# may press it as soon as the desktop is ready, before the guest waits for it); once.
POWER_READERS=
arm_power_button() {
    [ -n "$POWER_READERS" ] && return 0
    # ACPI (AAVMF) gives an input device "Power Button" sending KEY_POWER; a device tree gives
    # gpio-keys. One event read from any of them is the button press.
    devs=
    for ev in /sys/class/input/event*; do
        [ -e "$ev/device/name" ] || continue
        case "$(cat "$ev/device/name")" in
            "Power Button" | gpio-keys) devs="$devs /dev/input/${ev##*/}" ;;
        esac
    done
    [ -n "$devs" ] || die "no power button input device"
    # dd opens its input before it creates its output file: once every /tmp/power-button.N
    # exists, every reader holds its device open and no press can be lost. The first event read
    # (24 bytes, one struct input_event) makes that file non-empty.
    i=0
    for dev in $devs; do
        wait_for "$dev" 10 || die "no $dev"
        rm -f "/tmp/power-button.$i"
        dd if="$dev" of="/tmp/power-button.$i" bs=24 count=1 2>/dev/null &
        i=$((i + 1))
    done
    j=0
    while [ "$j" -lt "$i" ]; do
        wait_for "/tmp/power-button.$j" 5 || die "cannot open the power button device"
        j=$((j + 1))
    done
    POWER_READERS=$i
}

wait_power_button() {
    arm_power_button
    wait_reports
    step ready
    start_write_load
    pressed=
    while [ -z "$pressed" ]; do
        for f in /tmp/power-button.*; do
            [ -s "$f" ] && pressed=1
        done
        [ -z "$pressed" ] && sleep 0.1
    done
    step poweroff
    stop_write_load
    sync
    poweroff -f
    die "poweroff -f returned"
}

# specialize_commands: the specialize RunSynchronousCommands the testbed executes, by Order: a copy from
# the answer medium (copy_from_medium) and the driver script (install_drivers). Any other is ignored.
specialize_commands() {
    answer_facts "$PANTHER/unattend.xml" >"$FACTS" || die "specialize: cannot read the cached answer file"
    while read -r key order kind rest <&3; do
        [ "$key" = sp ] || continue
        case "$kind" in
            copy) copy_from_medium "$order" "$rest" ;;
            drivers) install_drivers "$rest" ;;
        esac
    done 3<"$FACTS"
}

# copy_from_medium ORDER |SRC|DEST|: `copy /y X:\SRC "DEST"` from the answer medium (found by its marker)
# to the Windows path DEST; "WINARM-EVENT command-failed specialize ORDER REASON" when it fails (Setup goes
# on after a failing command).
copy_from_medium() {
    r="${2#|}"
    src="${r%%|*}"
    r="${r#*|}"
    dest="${r%%|*}"
    find_media marker 30 || die "specialize: no answer medium with winarm.marker"
    if ! win_path "$dest"; then
        event command-failed specialize "$1" "copy to $dest: not a path on C:"
    elif [ ! -f "$MARKER/$src" ]; then
        event command-failed specialize "$1" "copy: the answer medium has no $src"
    elif ! { mkdir -p "${WIN_PATH%/*}" && cp "$MARKER/$src" "$WIN_PATH"; } 2>/tmp/copy.err; then
        event command-failed specialize "$1" "copy to $dest: $(tail -n 1 /tmp/copy.err)"
    fi
    sync
}

from_disk() {
    next=
    if [ -b /dev/vda2 ]; then
        mkdir -p /mnt/sys
        if mount -t vfat -o ro /dev/vda2 /mnt/sys 2>/dev/null; then
            [ -f "$STATE" ] && next="$(sed -n 's/^next=//p' "$STATE")"
            DRIVERS="$(sed -n 's/^drivers=//p' "$STATE" 2>/dev/null)"
            [ -n "$next" ] && WINDOWS=1 && network_driver_installed && NET_DRIVER=1
            if [ -z "$next" ] || [ "$next" = complete ]; then
                # what this logon needs from the disk: the Run key and, for its shares, the answer file
                if [ -s "$RUN_KEYS" ]; then
                    cp "$RUN_KEYS" /tmp/run-keys || die "logon: cannot read the Run key"
                    [ -f "$PANTHER/unattend.xml" ] && cp "$PANTHER/unattend.xml" "$ANSWER_COPY"
                fi
                if [ -s "$TASKS" ]; then
                    cp "$TASKS" /tmp/tasks || die "start: cannot read the scheduled tasks"
                fi
                [ -f "$WRITE_LOAD" ] && LOAD=1
                umount /mnt/sys
            fi
        fi
    fi
    step init
    case "$next" in
        "" | complete)
            fsck_disks
            arm_power_button
            [ -n "$NET_DRIVER" ] && net_up
            run_tasks
            run_keys
            wait_power_button
            ;;
        specialize)
            mount -o remount,rw /mnt/sys || die "specialize: cannot write the Windows partition"
            specialize_commands
            save_state oobeSystem
            umount /mnt/sys || die "unmounting the Windows partition"
            sync
            reboot -f
            die "reboot -f returned"
            ;;
        oobeSystem)
            mount -o remount,rw /mnt/sys || die "oobeSystem: cannot write the Windows partition"
            arm_power_button
            [ -n "$NET_DRIVER" ] && net_up
            first_logon_commands
            save_state complete
            umount /mnt/sys || die "unmounting the Windows partition"
            wait_power_button
            ;;
        *) die "unknown setup state next=$next" ;;
    esac
}

case "$boot" in
    cd)
        find_media seed 30 || die "no CD with seed.img"
        [ -n "$ANSWER" ] && WINDOWS=1
        step init
        if [ -n "$ANSWER" ]; then
            windows_pe
        else
            setup_from_cd
        fi
        ;;
    disk) from_disk ;;
    *) die "no winarm.boot= on the kernel command line" ;;
esac
die "init fell through"
