# Kernel options for RAUC verity bundles on evsed devices (raspberrypi4-64: Pi 4 and CM4).
FILESEXTRAPATHS:prepend:raspberrypi4-64 := "${THISDIR}/files:"
SRC_URI:append:raspberrypi4-64 = " file://rauc-verity.cfg"
