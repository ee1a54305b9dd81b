# RAUC system configuration and keyring of evsed devices on raspberrypi4-64 (Pi 4 and CM4):
# the repository's rauc/system.conf.pi4-uboot (files/ links to it): U-Boot with boot-attempt
# counting, slots A/B on mmcblk0p2/p3, verity bundles only, casync sent to evsed's chunk
# relay. Other machines keep meta-rauc's example, which its recipe warns about.
FILESEXTRAPATHS:prepend:raspberrypi4-64 := "${THISDIR}/files:"

# The keyring is the CA certificate bundles must be signed under: ca.cert.pem from the
# directory EVSED_RAUC_KEY_DIR (conf/layer.conf). Without it meta-rauc's placeholder is used,
# and rauc-conf warns.
FILESEXTRAPATHS:prepend:raspberrypi4-64 := "${EVSED_RAUC_KEY_DIR}:"
RAUC_KEYRING_FILE:raspberrypi4-64 = "ca.cert.pem"

# system.conf names the keyring /etc/rauc/ca.cert.pem. scarthgap's rauc-conf installs both
# files into /etc/rauc already; later releases install them into /usr/lib/rauc, where RAUC
# finds system.conf too, so the keyring moves to the path the configuration gives.
do_install:append:raspberrypi4-64() {
    if [ -e ${D}${nonarch_libdir}/rauc/${RAUC_KEYRING_FILE} ]; then
        install -d ${D}${sysconfdir}/rauc
        mv ${D}${nonarch_libdir}/rauc/${RAUC_KEYRING_FILE} ${D}${sysconfdir}/rauc/ca.cert.pem
    fi
}

FILES:${PN}:append:raspberrypi4-64 = " ${sysconfdir}/rauc"
