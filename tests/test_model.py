"""Model spec: shape inference, summary, JSON, refusals."""

import pytest

from spinnconv import Classifier, ConvLayer, PoolLayer, SequentialModel
from spinnconv.errors import UsageError


def kheradpisheh_like() -> SequentialModel:
    model = SequentialModel(input_shape=(28, 28, 2))
    model.add(ConvLayer(30, (5, 5)))
    model.add(PoolLayer((2, 2)))
    model.add(ConvLayer(100, (5, 5)))
    model.add(PoolLayer((2, 2)))
    model.add(Classifier())
    return model


def test_shape_inference_follows_the_formula():
    model = kheradpisheh_like()
    # two conv layers: the classifier reads both stages (12×12×30 and 4×4×100 neurons)
    assert model.shapes == [(28, 28, 2), (24, 24, 30), (12, 12, 30), (8, 8, 100),
                            (4, 4, 100), (1, 12 * 12 * 30 + 4 * 4 * 100, 1)]
    assert model.output_shape == (4, 4, 100)
    assert model.n_conv_layers == 2
    assert model.conv_layer_positions == [0, 2]


def test_a_deep_net_reads_every_stage_unless_told():
    deep = kheradpisheh_like()
    assert deep.classifier.layers == "all" and deep.classifier.votes_by_stage
    assert deep.readout_stage_features() == [12 * 12 * 30, 4 * 4 * 100]
    assert SequentialModel.from_dict(deep.to_dict()) == deep
    last = SequentialModel((28, 28, 2)).add(ConvLayer(30, (5, 5))).add(PoolLayer((2, 2)))
    last.add(ConvLayer(100, (5, 5))).add(Classifier(layers="last"))
    assert last.readout_stage_features() == [8 * 8 * 100]
    one = SequentialModel((28, 28, 2)).add(ConvLayer(30, (5, 5))).add(Classifier())
    assert one.classifier.layers is None and one.readout_stage_features() == [24 * 24 * 30]
    assert "combine" not in one.to_dict()["layers"][-1]  # older specs stay equal
    joined = SequentialModel((28, 28, 2)).add(ConvLayer(30, (5, 5))).add(PoolLayer((2, 2)))
    joined.add(ConvLayer(10, (5, 5))).add(Classifier(grid=2, combine="concatenate"))
    assert not joined.classifier.votes_by_stage
    assert joined.readout_stage_features() == [2 * 2 * 30, 1 * 1 * 10]
    with pytest.raises(UsageError, match="combine"):
        Classifier(combine="average")


@pytest.mark.parametrize("size,kernel,stride,padding,expected", [
    (28, 5, 1, 0, 24), (28, 5, 2, 0, 12), (8, 3, 1, 1, 8), (7, 3, 2, 1, 4), (5, 5, 1, 0, 1)])
def test_conv_output_size(size, kernel, stride, padding, expected):
    layer = ConvLayer(4, (kernel, kernel), stride, padding)
    assert layer.output_shape((size, size, 3)) == (expected, expected, 4)


def test_summary_counts_neurons_and_synapses():
    model = SequentialModel((8, 8, 2)).add(ConvLayer(4, (3, 3))).add(PoolLayer((2, 2)))
    rows = model.layer_counts()
    assert rows[0]["neurons"] == 6 * 6 * 4
    assert rows[0]["synapses"] == 6 * 6 * 4 * 3 * 3 * 2 + 6 * 6 * 4 * 3  # + lateral WTA
    assert rows[1]["neurons"] == 3 * 3 * 4 and rows[1]["synapses"] == 6 * 6 * 4
    text = model.summary()
    assert "Conv 4×3×3" in text and "6×6×4" in text and "3×3×4" in text


def test_json_round_trip():
    model = kheradpisheh_like()
    again = SequentialModel.from_json(model.to_json())
    assert again == model and again.shapes == model.shapes


@pytest.mark.parametrize("layer,message", [
    (ConvLayer(4, (9, 9)), "larger than its padded input"),
    (PoolLayer((9, 9)), "larger than its input"),
])
def test_layer_that_does_not_fit_is_refused(layer, message):
    model = SequentialModel((8, 8, 1))
    with pytest.raises(UsageError, match=message):
        model.add(layer)
    assert model.layers == []


@pytest.mark.parametrize("make", [
    lambda: ConvLayer(0), lambda: ConvLayer(4, (3, 3), stride=0), lambda: ConvLayer(4, (0, 3)),
    lambda: ConvLayer(4, (3, 3), padding=-1), lambda: PoolLayer((2, 2), stride=0),
    lambda: PoolLayer((0, 2)), lambda: ConvLayer(float("nan")), lambda: ConvLayer(2.5),
    lambda: SequentialModel((8, 8)),
])
def test_invalid_layer_values_are_refused(make):
    with pytest.raises(UsageError):
        make()


def test_classifier_must_be_last():
    model = SequentialModel((8, 8, 1)).add(ConvLayer(2, (3, 3))).add(Classifier())
    with pytest.raises(UsageError, match="last layer"):
        model.add(PoolLayer((2, 2)))


def test_unknown_layer_kind_in_spec():
    with pytest.raises(UsageError, match="unknown layer kind"):
        SequentialModel.from_dict({"input_shape": [8, 8, 1], "layers": [{"kind": "dense"}]})
