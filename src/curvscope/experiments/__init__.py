"""curvscope.experiments (see ../shared/design.md)."""
