"""Errors of person preprocessing.

The API maps them to HTTP (PersonNotFound, InvalidPhoto -> 422); nothing here knows HTTP.
"""

from __future__ import annotations


class PreprocessError(Exception):
    """Base class. `code` is a stable machine-readable name for the failure."""

    code = "preprocess_failed"


class PersonNotFound(PreprocessError):
    """No person, or not enough of one, to build the try-on conditions from the photo.

    `missing` names the OpenPose keypoints that were needed but not found (empty when no person was found at all).
    """

    code = "person_not_found"

    def __init__(self, message: str, missing: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.missing = missing


class InvalidPhoto(PreprocessError, ValueError):
    """The photo is not an RGB uint8 [H, W, 3] array of a usable size."""

    code = "invalid_photo"


class UnknownCategory(PreprocessError, ValueError):
    """The garment category is not one of upper_body, lower_body, dresses."""

    code = "unknown_category"


class InvalidGarmentRegion(PreprocessError, ValueError):
    """A garment region (e.g. from the SAM hook) is not a bool [H, W] mask of the frame."""

    code = "invalid_garment_region"


class ModelNotBundled(PreprocessError):
    """The requested mediapipe model is not inside the installed wheel, and nothing can be downloaded here."""

    code = "model_not_bundled"
