"""spinnconv: spiking convolutional networks, trained layer by layer with STDP,
read out with a linear SVM, simulated with PyNN (Brian2, NEST) or deployed to
SpiNNaker through sPyNNaker.
"""

from .model import Classifier, ConvLayer, PoolLayer, SequentialModel

__version__ = "0.1.0"
__all__ = ["Classifier", "ConvLayer", "PoolLayer", "SequentialModel", "__version__"]
