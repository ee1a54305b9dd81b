# boot.scr of evsed devices on raspberrypi4-64 (Pi 4 and CM4): the repository's
# rauc/uboot-boot.cmd.txt (files/ links to it), which picks slot A or B from BOOT_ORDER and
# counts boot attempts for RAUC. It has none of the @@...@@ placeholders of meta-raspberrypi's
# script, so do_compile's substitutions leave it as it is.
FILESEXTRAPATHS:prepend:raspberrypi4-64 := "${THISDIR}/files:"
