SUMMARY = "A simple interface to GPIO devices with Raspberry Pi"
DESCRIPTION = "Output and input devices on GPIO pins with interchangeable pin factories \
               (lgpio, RPi.GPIO, native, mock); evsed drives the contactor coil and reads its \
               mirror contact through it."
HOMEPAGE = "https://gpiozero.readthedocs.io/"
BUGTRACKER = "https://github.com/gpiozero/gpiozero/issues"
SECTION = "devel/python"
CVE_PRODUCT = "gpiozero"
LICENSE = "BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE.rst;md5=f7edfe7aeac02cb6c394726db07eb41c"

SRC_URI[sha256sum] = "d4ea1952689ec7e331f9d4ebc9adb15f1d01c2c9dcfabb72e752c9869ab7e97e"

inherit pypi setuptools3

# The pinout tool and its fonts stay with the library; the lgpio pin factory is the one
# gpiozero 2 tries first (Pi 5, and Pi 4/CM4 on gpiochip kernels).
RDEPENDS:${PN} += "\
    python3-colorzero \
    python3-core \
    python3-datetime \
    python3-math \
    python3-mmap \
    python3-pprint \
    python3-statistics \
    python3-threading \
"
RRECOMMENDS:${PN} += "python3-lgpio"
