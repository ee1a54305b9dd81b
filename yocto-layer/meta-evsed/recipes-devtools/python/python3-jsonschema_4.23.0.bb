SUMMARY = "An implementation of JSON Schema validation for Python"
DESCRIPTION = "JSON Schema validation (drafts 3 to 2020-12). ocpp 2.1 validates every OCPP \
               message with it and declares jsonschema >= 4.23: scarthgap's oe-core has \
               4.21.1, so this layer carries 4.23.0 for it. Wrynose's oe-core has 4.26.0, \
               which is newer and is used there instead."
HOMEPAGE = "https://github.com/python-jsonschema/jsonschema"
BUGTRACKER = "https://github.com/python-jsonschema/jsonschema/issues"
SECTION = "devel/python"
CVE_PRODUCT = "jsonschema"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://COPYING;md5=7a60a81c146ec25599a3e1dabb8610a8 \
                    file://json/LICENSE;md5=9d4de43111d33570c8fe49b4cb0e01af"

SRC_URI[sha256sum] = "d71497fef26351a33265337fa77ffeb82423f3ea21283cd9467bb03999266bc4"

inherit pypi python_hatchling

DEPENDS += "\
    python3-hatch-fancy-pypi-readme-native \
    python3-hatch-vcs-native \
"

# The optional format checkers (the "format" extra) are not needed: the OCPP schemas are
# validated without format assertions.
RDEPENDS:${PN} += "\
    python3-attrs \
    python3-core \
    python3-datetime \
    python3-json \
    python3-jsonschema-specifications \
    python3-netclient \
    python3-numbers \
    python3-pprint \
    python3-referencing \
    python3-rpds-py \
"

BBCLASSEXTEND = "native nativesdk"
