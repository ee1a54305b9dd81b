SUMMARY = "asyncio support for pySerial, without a polling loop"
DESCRIPTION = "Serial transports and streams for asyncio on top of pySerial; evsed's link to \
               the control-pilot MCU uses it."
HOMEPAGE = "https://github.com/home-assistant-libs/pyserial-asyncio-fast"
BUGTRACKER = "https://github.com/home-assistant-libs/pyserial-asyncio-fast/issues"
SECTION = "devel/python"
CVE_PRODUCT = "pyserial-asyncio-fast"
LICENSE = "BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE.txt;md5=9a79418f241689e78034391d51162d24"

# scarthgap's setuptools (69) predates SPDX license strings in pyproject.toml (setuptools 77).
SRC_URI += "${@bb.utils.contains('LAYERSERIES_CORENAMES', 'scarthgap', 'file://0001-pyproject-license-table-for-setuptools-before-77.patch', '', d)}"
SRC_URI[sha256sum] = "fd52643380406739d777014b0aea0873d756b542eb62f7556567239cec007115"

PYPI_PACKAGE = "pyserial_asyncio_fast"

inherit pypi python_setuptools_build_meta

RDEPENDS:${PN} += "\
    python3-asyncio \
    python3-core \
    python3-logging \
    python3-netclient \
    python3-pyserial \
"
