# gpt-extend.awk: what `diskpart` does for `select volume C` / `extend` on the testbed's disk, worked out on its
# GPT (see extend_c in init.sh). Input: `hexdump -v -C` of LBA 0-33 (the protective MBR, the primary header,
# then the entries);
# variables: last (the disk's last LBA) and part (C:'s partition number). Output, one line each:
#   "extend FIRST OLD_LAST NEW_LAST ENTRY_SECTORS"  C:'s first LBA, its last before and after, the entries'
#                     length in sectors;
#   "p OFFSET OCTAL"  a patch of the buffer (LBA 0-33) at byte OFFSET: the bytes as printf octal escapes;
#   "b OFFSET OCTAL"  a patch of the backup header (a copy of LBA 1 once patched), OFFSET within it;
# or the one line "none REASON" when nothing is to be done (no space after C:) or can be (C: is not the last
# partition, an unexpected GPT). CRC-32 is computed without bitwise operators, so any POSIX awk runs this.
function hexval(h,    v, i) {
    v = 0
    for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
    return v
}
function xor8(a, b) {
    return X4[int(a / 16) * 16 + int(b / 16)] * 16 + X4[(a % 16) * 16 + b % 16]
}
function crc_init(    a, b, r, bit, x, y, k, i, c0, c1, c2, c3, odd) {
    for (a = 0; a < 16; a++)
        for (b = 0; b < 16; b++) {
            r = 0; bit = 1; x = a; y = b
            for (k = 0; k < 4; k++) {
                if (x % 2 != y % 2) r += bit
                x = int(x / 2); y = int(y / 2); bit *= 2
            }
            X4[a * 16 + b] = r
        }
    for (i = 0; i < 256; i++) {
        c0 = i; c1 = 0; c2 = 0; c3 = 0
        for (k = 0; k < 8; k++) {
            odd = c0 % 2
            c0 = int(c0 / 2) + (c1 % 2) * 128
            c1 = int(c1 / 2) + (c2 % 2) * 128
            c2 = int(c2 / 2) + (c3 % 2) * 128
            c3 = int(c3 / 2)
            if (odd) { c0 = xor8(c0, 32); c1 = xor8(c1, 131); c2 = xor8(c2, 184); c3 = xor8(c3, 237) }
        }
        T0[i] = c0; T1[i] = c1; T2[i] = c2; T3[i] = c3
    }
}
# crc(ARR, FROM, N): the CRC-32 (as zlib's) of ARR[FROM .. FROM+N-1].
function crc(arr, from, n,    c0, c1, c2, c3, i, t) {
    c0 = 255; c1 = 255; c2 = 255; c3 = 255
    for (i = from; i < from + n; i++) {
        t = xor8(c0, arr[i])
        c0 = xor8(c1, T0[t]); c1 = xor8(c2, T1[t]); c2 = xor8(c3, T2[t]); c3 = T3[t]
    }
    return (255 - c0) + (255 - c1) * 256 + (255 - c2) * 65536 + (255 - c3) * 16777216
}
function le(arr, off, n,    v, k) {
    v = 0
    for (k = n - 1; k >= 0; k--) v = v * 256 + arr[off + k]
    return v
}
# put(ARR, OFF, N, V, KIND): V as N little-endian bytes at OFF of ARR, and a patch line of KIND for them.
function put(arr, off, n, v, kind,    k, s) {
    s = ""
    for (k = 0; k < n; k++) {
        arr[off + k] = v % 256
        s = s sprintf("\\%03o", v % 256)
        v = int(v / 256)
    }
    print kind " " off " " s
}
$1 ~ /^[0-9a-f]+$/ && NF >= 17 { for (i = 2; i <= 17; i++) B[nb++] = hexval($i) }
END {
    if (nb < 34 * 512) { print "none short read of the GPT"; exit }
    sig = ""
    for (i = 0; i < 8; i++) sig = sig sprintf("%c", B[512 + i])
    count = le(B, 592, 4); size = le(B, 596, 4); hsize = le(B, 524, 4)
    if (sig != "EFI PART" || le(B, 584, 8) != 2 || size != 128 || count * size > 32 * 512 || hsize != 92) {
        print "none not a GPT this testbed handles"; exit
    }
    esec = int((count * size + 511) / 512)
    for (i = 0; i < count; i++) {
        e = 1024 + i * size
        if (le(B, e, 16) == 0) continue
        if (le(B, e + 40, 8) > maxend) { maxend = le(B, e + 40, 8); lastpart = i + 1 }
    }
    if (lastpart != part) { print "none C: (partition " part ") is not the last partition"; exit }
    e = 1024 + (part - 1) * size
    old = le(B, e + 40, 8)
    usable = last - esec - 1
    if (old >= usable) { print "none no unallocated space after C:"; exit }
    crc_init()
    print "extend " le(B, e + 32, 8) " " old " " usable " " esec
    if (B[450] == 238) put(B, 458, 4, last > 4294967295 ? 4294967295 : last, "p") # the protective MBR's size
    put(B, e + 40, 8, usable, "p")
    put(B, 544, 8, last, "p")
    put(B, 560, 8, usable, "p")
    put(B, 600, 4, crc(B, 1024, count * size), "p")
    put(B, 528, 4, 0, "p")
    put(B, 528, 4, crc(B, 512, hsize), "p")
    for (i = 0; i < 512; i++) H[i] = B[512 + i]
    put(H, 24, 8, last, "b")
    put(H, 32, 8, 1, "b")
    put(H, 72, 8, last - esec, "b")
    put(H, 16, 4, 0, "b")
    put(H, 16, 4, crc(H, 0, hsize), "b")
}
