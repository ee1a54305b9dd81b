SUMMARY = "An implementation of the WebSocket Protocol (RFC 6455 and 7692)"
DESCRIPTION = "asyncio websocket client and server; evsed's OCPP-J transport. evsed needs \
               websockets >= 13 (the new asyncio client): scarthgap's oe-core has 12.0, so \
               this layer carries 15.0.1 for it. Wrynose's oe-core has 16.0, which is newer \
               and is used there instead."
HOMEPAGE = "https://github.com/python-websockets/websockets"
BUGTRACKER = "https://github.com/python-websockets/websockets/issues"
SECTION = "devel/python"
CVE_PRODUCT = "websockets"
LICENSE = "BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE;md5=51924a6af4495b8cfaee1b1da869b6f4"

SRC_URI[sha256sum] = "82544de02076bafba038ce055ee6412d68da13ab47f0c60cab827346de828dee"

inherit pypi python_setuptools_build_meta

RDEPENDS:${PN} += "\
    python3-asyncio \
    python3-core \
    python3-crypt \
    python3-email \
    python3-io \
    python3-logging \
    python3-math \
    python3-netclient \
    python3-threading \
"

BBCLASSEXTEND = "native nativesdk"
