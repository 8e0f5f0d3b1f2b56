"""curvscope.rmt (see ../shared/design.md)."""
