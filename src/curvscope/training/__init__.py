"""curvscope.training (see ../shared/design.md)."""
