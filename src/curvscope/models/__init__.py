"""curvscope.models (see ../shared/design.md)."""
