"""The layout families: one adapter per kind of archive layout, parameterised by a manifest's `layout.params`."""
