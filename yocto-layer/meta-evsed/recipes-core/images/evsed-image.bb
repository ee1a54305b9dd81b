SUMMARY = "evsed charger image: A/B root file systems, a data partition and RAUC"
DESCRIPTION = "Read-only root file system with evsed, RAUC and the U-Boot environment tools, \
               for the storage layout of rauc/system.conf.pi4-uboot: a FAT boot partition, \
               root file systems A and B, and /data, which survives updates. Holds the device \
               packages only: none of the development CSMS or the test tools."
HOMEPAGE = "https://github.com/evsed/evsed"
BUGTRACKER = "https://github.com/evsed/evsed/issues"
SECTION = "image"
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs"

# kernel-image: the U-Boot script loads /boot/Image from the slot it boots, so a bundle
# updates the kernel with the root file system. libubootenv-bin (fw_printenv, fw_setenv) and
# u-boot-env (/etc/fw_env.config) let RAUC switch slots and count boot attempts.
IMAGE_INSTALL = "\
    packagegroup-core-boot \
    evsed \
    evsed-config \
    kernel-image \
    libubootenv-bin \
    rauc \
    u-boot-env \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"

# ext4: the slot image the bundle carries; wic: the whole card or eMMC for the first flash.
IMAGE_FSTYPES = "ext4 wic.bz2 wic.bmap"
WKS_FILE = "evsed-rpi4-ab.wks"
# The wks file is in files/wic, where wrynose looks (and whose sanity check refuses a layer
# with the older wic/ directory); scarthgap searches wic/ only, so tell it.
WKS_SEARCH_PATH:prepend = "${EVSED_LAYERDIR}/files/wic:"
# The slots are 1 GiB (the wks file); an image that does not fit fails the build.
IMAGE_ROOTFS_MAXSIZE = "1048576"

COMPATIBLE_MACHINE = "^raspberrypi4-64$"

# The mounts go into the image's own fstab, not only into the wic image's (wic would write
# them into slot A's copy alone): every slot a bundle installs must mount them. /data is the
# mount point on the read-only root file system.
evsed_rootfs_layout() {
    install -d ${IMAGE_ROOTFS}/data
    printf '%s\n' \
        '/dev/mmcblk0p1  /boot  vfat  defaults,noatime  0  2' \
        '/dev/mmcblk0p4  /data  ext4  defaults,noatime  0  2' \
        >> ${IMAGE_ROOTFS}${sysconfdir}/fstab
    # rauc/hook.sh refuses bundles older than this.
    sed -i -e 's/^VERSION_ID=.*/VERSION_ID=${EVSED_FIRMWARE_VERSION}/' \
        ${IMAGE_ROOTFS}${nonarch_libdir}/os-release
}
evsed_rootfs_layout[doc] = "Adds the /boot and /data mounts to fstab and the firmware version to os-release"
ROOTFS_POSTPROCESS_COMMAND += "evsed_rootfs_layout"
