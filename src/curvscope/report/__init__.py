"""curvscope.report (see ../shared/design.md)."""
