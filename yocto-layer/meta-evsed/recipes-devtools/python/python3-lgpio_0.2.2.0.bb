SUMMARY = "Python module for GPIO on Linux single-board computers (lgpio)"
DESCRIPTION = "SWIG binding of the lg library, which drives GPIO through the Linux gpiochip \
               character devices (Raspberry Pi 5, and Pi 4/CM4). The sdist carries the \
               library's C sources; with PYPI=1 its setup.py links them into the extension, so \
               no separate liblgpio is needed."
HOMEPAGE = "https://abyz.me.uk/lg/py_lgpio.html"
BUGTRACKER = "https://github.com/joan2937/lg/issues"
SECTION = "devel/python"
CVE_PRODUCT = "lgpio"
LICENSE = "Unlicense"
LIC_FILES_CHKSUM = "file://LICENSE;md5=61287f92700ec1bdf13bc86d8228cd13"

SRC_URI[sha256sum] = "11372e653b200f76a0b3ef8a23a0735c85ec678a9f8550b9893151ed0f863fff"

inherit pypi setuptools3

DEPENDS += "swig-native"

# Build the extension with the bundled lg sources instead of linking a system liblgpio.
export PYPI = "1"

RDEPENDS:${PN} += "\
    python3-core \
    python3-io \
"
