# nooelint: oelint.file.underscores - a bundle has no version of its own: RAUC_BUNDLE_VERSION is the firmware version
SUMMARY = "evsed firmware update bundle (RAUC)"
DESCRIPTION = "Signed RAUC bundle of evsed-image's root file system for the A/B slots of \
               rauc/system.conf.pi4-uboot, in verity format with an adaptive block-hash-index, \
               and the repository's install-check hook (compatible, no downgrade, free space); \
               beside it the casync bundle and chunk store of delta updates."
HOMEPAGE = "https://github.com/evsed/evsed"
BUGTRACKER = "https://github.com/evsed/evsed/issues"
SECTION = "image"
LICENSE = "MIT"

inherit bundle

# The same values as rauc/manifest.raucm.in, which this recipe's manifest replaces.
RAUC_BUNDLE_COMPATIBLE = "evsed-rpi4"
RAUC_BUNDLE_VERSION = "${EVSED_FIRMWARE_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "evsed charge controller firmware ${EVSED_FIRMWARE_VERSION}"
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "evsed-image"
RAUC_SLOT_rootfs[fstype] = "ext4"
RAUC_SLOT_rootfs[rename] = "rootfs.ext4"
# Lets a device that streams the bundle over HTTP (RAUC's streaming, which needs NBD in the
# kernel) fetch only the blocks its slots do not hold yet. evsed downloads bundles to /data
# before installing, so today the delta path that saves bytes is the casync bundle below.
RAUC_SLOT_rootfs[adaptive] = "block-hash-index"

# Also the delta bundle of evsed's delta updates (docs/ota.md): rauc convert turns the signed
# bundle into a casync bundle (casync-evsed-bundle-*.raucb) and its chunk store (.castr/), as
# rauc/make-delta-bundle does; host both side by side. The devices run casync (evsed's
# RDEPENDS) to rebuild the image from the running slot and the chunks they lack.
RAUC_CASYNC_BUNDLE = "1"

# The install-check hook replaces RAUC's own compatible check (rauc/README.md); files/ links
# to the repository's rauc/hook.sh.
SRC_URI = "file://hook.sh"
RAUC_BUNDLE_HOOKS[file] = "hook.sh"
RAUC_BUNDLE_HOOKS[hooks] = "install-check"

RAUC_META_SECTIONS = "evsed"
RAUC_META_evsed[allow-downgrade] = "false"

RAUC_KEY_FILE = "${EVSED_RAUC_KEY_DIR}/signing.key.pem"
RAUC_CERT_FILE = "${EVSED_RAUC_KEY_DIR}/signing.cert.pem"
# rauc checks the new bundle against the devices' keyring right after signing it.
RAUC_KEYRING_FILE = "${EVSED_RAUC_KEY_DIR}/ca.cert.pem"

COMPATIBLE_MACHINE = "^raspberrypi4-64$"
