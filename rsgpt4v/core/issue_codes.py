"""What can be wrong with a dataset's files, as the run report counts it.

Every input issue (a skipped sample, line or file, or a warning about kept data) carries one
`IssueCode`: one code per distinct problem, whatever the message around it says, so the
manifest's `issues.by_reason` counts stay the same when a message is reworded. The message keeps
the particulars (file, line, the offending value); the code is what there can be many of.
"""

from __future__ import annotations

from enum import StrEnum


class IssueCode(StrEnum):
    """An input issue's code; `meaning` is the sentence the README's table gives it."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> IssueCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    # Files as a whole
    FILE_UNREADABLE = "file_unreadable", "a file cannot be read: no permission, not text, not UTF-8"
    FILE_SYNTAX_ERROR = "file_syntax_error", "an annotation file is not valid JSON or XML"
    FILE_WRONG_STRUCTURE = "file_wrong_structure", \
        "an annotation file parses but is not laid out as the format expects (a list where an object belongs, ...)"
    ANNOTATION_MISSING = "annotation_missing", \
        "an image has no label file, or a split lacks one of its annotation files"
    # Images
    IMAGE_MISSING = "image_missing", "an image the annotations name (or a label file pairs with) is not there"
    IMAGE_FOLDER_MISSING = "image_folder_missing", "the image folder of a question file is not there"
    IMAGE_UNREADABLE = "image_unreadable", "an image cannot be decoded (damaged, or a pixel format that cannot be read)"
    IMAGE_TOO_LARGE = "image_too_large", "an image has more pixels than `image.max_pixels` allows"
    IMAGE_STRETCHED = "image_stretched", \
        "images of more than 8 bits per band, scaled to 8 bits by a 2-98 % percentile stretch, whole or tiled; " \
        "said once per source"
    IMAGE_OUTSIDE_ROOT = "image_outside_root", \
        "images lie outside `--root` (through a symbolic link or an option); followed, said once per split"
    PATH_OUTSIDE_FOLDER = "path_outside_folder", \
        "a file name in the annotations climbs out of its folder (`..`, an absolute path)"
    DUPLICATE_IMAGE = "duplicate_image", "the same image twice (two suffixes of one name, one file listed twice)"
    NON_IMAGE_FILE = "non_image_file", "files that are not images in a class folder; ignored"
    EMPTY_FOLDER = "empty_folder", "a class folder without images"
    # Entries: an annotation line, XML object, JSON item or question
    MALFORMED_ENTRY = "malformed_entry", \
        "an annotation entry lacks a field or has one of the wrong type or form"
    EMPTY_TEXT = "empty_text", "a caption, question, answer or expression that is missing or blank"
    IMAGE_TOKEN_IN_TEXT = "image_token_in_text", \
        "a caption, question, answer or expression holding `<image>`, the token trainers replace with the image; dropped"
    DUPLICATE_ID = "duplicate_id", "an id, key or index that the annotations use twice"
    DUPLICATE_QUESTION = "duplicate_question", "the same question asked again of one image; dropped"
    BROKEN_REFERENCE = "broken_reference", \
        "an entry points at an image, category, question, answer or object that is not there"
    INACTIVE_ENTRY = "inactive_entry", "entries the dataset marks inactive; dropped"
    CROWD_ANNOTATION = "crowd_annotation", "COCO crowd annotations (`iscrowd=1`); dropped"
    SPLIT_UNLABELLED = "split_unlabelled", "a split ships its questions without answers; its images kept unannotated"
    # Objects
    DEGENERATE_BOX = "degenerate_box", "a box or polygon with (almost) no area, or fewer than 3 distinct points"
    BAD_COORDINATES = "bad_coordinates", "coordinates no image can have, or not in pixels"
    BOX_OUTSIDE_IMAGE = "box_outside_image", "an object lies wholly outside its image; dropped"
    BOX_CLIPPED = "box_clipped", "objects extend past their image; clipped to it"
    UNKNOWN_CATEGORY = "unknown_category", \
        "a category (or scene class folder) outside the dataset's list; kept, said where first seen"
    BAD_GSD = "bad_gsd", "a ground sample distance that is not a plausible number of metres per pixel; ignored"
    # Records
    RECORD_FAILED = "record_failed", \
        "a record failed after the model answered (task building, rendering, the record contract, writing): " \
        "dropped, named by image, window and task; the build goes on (`--strict` stops instead)"
