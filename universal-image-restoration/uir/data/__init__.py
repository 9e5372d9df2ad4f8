"""uir.data: paired LQ/GT test folders (`paired`), synthetic degradations (`degradations`)
and the demo data set (`demo`)."""
from uir.data.paired import (
    IMAGE_EXTENSIONS,
    DataError,
    DatarootNotFoundError,
    ImagePair,
    PairedImageDataset,
    SizeGroupedBatchSampler,
    collate_pairs,
    group_by_size,
    image_size,
    list_images,
    make_loader,
    pair_folders,
    read_image,
    read_image_uint8,
)

__all__ = [
    "IMAGE_EXTENSIONS", "DataError", "DatarootNotFoundError", "ImagePair", "PairedImageDataset",
    "SizeGroupedBatchSampler", "collate_pairs", "group_by_size", "image_size", "list_images", "make_loader",
    "pair_folders", "read_image", "read_image_uint8",
]
