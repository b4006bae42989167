"""spinnconv: spiking convolutional networks, trained layer by layer with STDP,
read out with a linear SVM, simulated with PyNN (Brian2, NEST) or deployed to
SpiNNaker through sPyNNaker.

``spinnconv.STDPConvNet`` is the Python API (:mod:`spinnconv.api`).
"""

from .model import Classifier, ConvLayer, PoolLayer, SequentialModel

__version__ = "0.1.0"
__all__ = ["Classifier", "ConvLayer", "PoolLayer", "STDPConvNet", "SequentialModel",
           "__version__"]


def __getattr__(name: str):
    if name == "STDPConvNet":  # imported on first use: scikit-learn, the pipeline
        from .api import STDPConvNet

        return STDPConvNet
    raise AttributeError(f"module 'spinnconv' has no attribute {name!r}")
