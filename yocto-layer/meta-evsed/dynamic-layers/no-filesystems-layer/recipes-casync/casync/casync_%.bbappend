# casync's fuse option (casync mount) needs fuse from meta-filesystems, which an evsed build
# does not otherwise need. On the device RAUC only runs "casync extract" for delta updates, so
# without that layer casync is built without fuse (conf/layer.conf loads this file only then).
PACKAGECONFIG:remove:raspberrypi4-64 = "fuse"
