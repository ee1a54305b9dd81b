SUMMARY = "Consistent Overhead Byte Stuffing (COBS) encoding and decoding"
DESCRIPTION = "COBS and COBS/R codecs with a C extension; the frames between evsed and the \
               control-pilot MCU are COBS encoded and 0x00 delimited."
HOMEPAGE = "https://github.com/cmcqueen/cobs-python"
BUGTRACKER = "https://github.com/cmcqueen/cobs-python/issues"
SECTION = "devel/python"
CVE_PRODUCT = "cobs"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE.txt;md5=99b98409d812a244309c8137a9e3aeea"

SRC_URI[sha256sum] = "dbdd5e32111d72786f83d0c269215dcd6ac629b1ac1962c6878221f3b2ca98da"

inherit pypi python_setuptools_build_meta

RDEPENDS:${PN} += "python3-core"
