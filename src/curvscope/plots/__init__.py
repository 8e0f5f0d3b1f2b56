"""curvscope.plots (see ../shared/design.md)."""
