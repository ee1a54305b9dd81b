SUMMARY = "A fully featured Modbus protocol stack in Python"
DESCRIPTION = "Modbus RTU, ASCII and TCP clients and servers on asyncio. evsed reads its \
               energy meters with it and needs the 3.16 API (device_id=, \
               convert_from_registers with word_order); scarthgap's meta-python has 3.6.7 and \
               wrynose's 3.13.0, so this version is newer than both and replaces them."
HOMEPAGE = "https://github.com/pymodbus-dev/pymodbus"
BUGTRACKER = "https://github.com/pymodbus-dev/pymodbus/issues"
SECTION = "devel/python"
CVE_PRODUCT = "pymodbus"
LICENSE = "BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE;md5=12a490c6cffa2e76a6df8aa1fa29e183"

SRC_URI[sha256sum] = "19e571826dff37860afc31c845c1fd2fb72acffca02a233506b32d94fa022c33"

inherit pypi python_setuptools_build_meta

# The serial extra (RTU on RS-485) is what a charger uses; the simulator, REPL and docs
# extras are left out.
RDEPENDS:${PN} += "\
    python3-asyncio \
    python3-core \
    python3-datetime \
    python3-io \
    python3-json \
    python3-logging \
    python3-math \
    python3-pyserial \
"
