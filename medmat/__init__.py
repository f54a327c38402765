"""medmat: rebuild the Med-MAT medical-imaging VQA collection from its original sources."""

__version__ = "0.1.0"
