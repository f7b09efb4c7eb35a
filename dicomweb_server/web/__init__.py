"""HTTP only: the DICOMweb routes, media types and multipart bodies, and errors as responses."""
