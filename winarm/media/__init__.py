"""Reading install media: the ISO's UDF tree, WIM metadata, downloads, the virtio driver catalog."""
