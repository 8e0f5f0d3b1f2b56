"""curvscope.spectral (see ../shared/design.md)."""
