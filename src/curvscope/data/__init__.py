"""curvscope.data (see ../shared/design.md)."""
