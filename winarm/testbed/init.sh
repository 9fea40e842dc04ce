#!/bin/sh
# winarm test guest: /init of the initramfs (busybox sh).
#
# Prints lines "WINARM-PHASE <name>" on the serial console:
#   init                 always, once /proc, /sys and /dev are up
#   setup, setup-done    winarm.boot=cd: seed.img from the CD written to /dev/vda, then `reboot -f`
#   ready, poweroff      winarm.boot=disk: waiting for the ACPI power button, then `poweroff -f`
#   error <reason>       on any failure, followed by `poweroff -f`; never hangs silently

/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

phase() {
    echo "WINARM-PHASE $*"
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

phase init

for m in $(cat /etc/winarm-modules); do
    modprobe "$m" || die "modprobe $m"
done

boot=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        winarm.boot=*) boot="${arg#winarm.boot=}" ;;
    esac
done

setup_from_cd() {
    phase setup
    mkdir -p /mnt/cd
    # The CD sits behind usb-storage: wait for the USB scan, then take the first CD with seed.img.
    n=0
    src=
    while [ -z "$src" ]; do
        for dev in /dev/sr*; do
            [ -b "$dev" ] || continue
            if mount -t iso9660 -o ro "$dev" /mnt/cd 2>/dev/null; then
                if [ -f /mnt/cd/seed.img ]; then
                    src="$dev"
                    break
                fi
                umount /mnt/cd
            fi
        done
        [ -n "$src" ] && break
        [ "$n" -ge 300 ] && die "no CD with seed.img"
        sleep 0.1
        n=$((n + 1))
    done
    wait_for /dev/vda 30 || die "no virtio disk /dev/vda"
    dd if=/mnt/cd/seed.img of=/dev/vda bs=1M conv=fsync 2>/tmp/dd.err || die "writing /dev/vda: $(tail -n 1 /tmp/dd.err)"
    sync
    umount /mnt/cd
    phase setup-done
    reboot -f
    die "reboot -f returned"
}

wait_power_button() {
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
    phase ready
    pressed=
    while [ -z "$pressed" ]; do
        for f in /tmp/power-button.*; do
            [ -s "$f" ] && pressed=1
        done
        [ -z "$pressed" ] && sleep 0.1
    done
    phase poweroff
    sync
    poweroff -f
    die "poweroff -f returned"
}

case "$boot" in
    cd) setup_from_cd ;;
    disk) wait_power_button ;;
    *) die "no winarm.boot= on the kernel command line" ;;
esac
die "init fell through"
