SUMMARY = "evsed EV charge-controller daemon"
DESCRIPTION = "Charge controller for embedded-Linux EV chargers: IEC 61851-1 control pilot \
               through an MCU, Modbus energy meters, contactor supervision on GPIO, OCPP 1.6J \
               and RAUC A/B firmware updates. Only the device wheel (the evsed and hal \
               packages) is installed; the development CSMS and the test tools never are."
HOMEPAGE = "https://github.com/evsed/evsed"
BUGTRACKER = "https://github.com/evsed/evsed/issues"
SECTION = "net"
CVE_PRODUCT = "evsed"
LICENSE = "Apache-2.0"
# The repository states its licence in pyproject.toml (there is no separate licence file).
LIC_FILES_CHKSUM = "file://pyproject.toml;beginline=11;endline=11;md5=3358005787c442581bead91c71afa94f"

# PV (from the file name) is the version in pyproject.toml; yocto-layer/lint checks that the
# two agree.

# Built from the checkout this layer is part of (EVSED_SRC, see conf/layer.conf and the
# layer's README). A release build fetches its tag instead (the layer's README says how):
#   SRC_URI = "git://github.com/evsed/evsed.git;protocol=https;branch=main"
#   SRCREV = "<commit of the tag v${PV}>"
# The repository's public address is not settled: HOMEPAGE, BUGTRACKER and that URL are
# placeholders until it is.
inherit externalsrc
EXTERNALSRC = "${EVSED_SRC}"

SRC_URI = "\
    file://evsed.tmpfiles \
    file://60-evsed-gpio.rules \
"

# pyproject.toml's build backend is setuptools.build_meta.
inherit python_setuptools_build_meta systemd useradd features_check

REQUIRED_DISTRO_FEATURES = "systemd"

# /etc/evsed/evsed.toml of the image (package evsed-config). The repository's example runs on
# simulated hardware ([hal] kind = "sim"): a product points this at its own file.
EVSED_CONFIG ?= "${S}/evsed.example.toml"

USERADD_PACKAGES = "${PN}"
# gpio: the group evsed.service names in SupplementaryGroups; the udev rule gives it the
# gpiochip devices. dialout (the serial lines) comes with base-passwd.
GROUPADD_PARAM:${PN} = "--system evsed; --system gpio"
USERADD_PARAM:${PN} = "--system --gid evsed --home-dir /data/evsed --no-create-home \
                       --shell /sbin/nologin evsed"

SYSTEMD_SERVICE:${PN} = "evsed.service"

# scarthgap unpacks file:// sources into WORKDIR, later releases into UNPACKDIR.
EVSED_FILES = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"

do_install:append() {
    # The device wheel must hold evsed and hal only (DESIGN.md: device package vs tools).
    for tool in evsed_devcsms evsed_devtools; do
        if [ -e ${D}${PYTHON_SITEPACKAGES_DIR}/$tool ]; then
            bbfatal "$tool is in the device wheel; it must never reach a charger"
        fi
    done

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/evsed.service ${D}${systemd_system_unitdir}/

    install -d ${D}${sysconfdir}/evsed
    install -m 0640 ${EVSED_CONFIG} ${D}${sysconfdir}/evsed/evsed.toml
    chgrp evsed ${D}${sysconfdir}/evsed/evsed.toml

    install -d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${EVSED_FILES}/evsed.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/evsed.conf

    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${EVSED_FILES}/60-evsed-gpio.rules ${D}${nonarch_base_libdir}/udev/rules.d/

    # The unit's Documentation= points here.
    install -d ${D}${docdir}/evsed
    install -m 0644 ${S}/README.md ${D}${docdir}/evsed/
}

PACKAGES =+ "${PN}-config"
FILES:${PN}-config += "${sysconfdir}/evsed"
CONFFILES:${PN}-config = "${sysconfdir}/evsed/evsed.toml"
FILES:${PN} += "\
    ${nonarch_libdir}/tmpfiles.d \
    ${nonarch_base_libdir}/udev/rules.d \
"

# What the device wheel imports (pyproject.toml dependencies), and the tools it runs: rauc for
# every update, casync for delta updates (RAUC runs it to rebuild the image from the running
# slot and the chunks evsed's relay fetches; docs/ota.md). systemd-python (the optional
# "systemd" extra) is not needed: evsed writes the sd_notify datagram itself.
RDEPENDS:${PN} += "\
    casync \
    python3-asyncio \
    python3-cobs \
    python3-core \
    python3-crypt \
    python3-cryptography \
    python3-datetime \
    python3-gpiozero \
    python3-html \
    python3-io \
    python3-json \
    python3-jsonschema \
    python3-lgpio \
    python3-logging \
    python3-math \
    python3-netclient \
    python3-netserver \
    python3-numbers \
    python3-ocpp \
    python3-pymodbus (>= 3.16) \
    python3-pyserial \
    python3-pyserial-asyncio-fast \
    python3-shell \
    python3-sqlite3 \
    python3-terminal \
    python3-tomllib \
    python3-websockets (>= 13) \
    rauc \
    systemd \
"
RRECOMMENDS:${PN} += "${PN}-config"
