"""The fast evaluation path (Paddle Inference with oneDNN) predicts as dygraph does."""
import json

import numpy as np
import paddle
import pytest

from conftest import run_tool
from paddle_resnet.config import load_config
from paddle_resnet.engine.eval_engine import (eval_forward, nchw_twin, resolve_engine, shifted,
                                              with_mirror)
from paddle_resnet.engine.step import speed_options, train_step, training_model
from paddle_resnet.inference import cpu_threads
from paddle_resnet.engine.trainer import Trainer
from paddle_resnet.errors import ConfigError
from paddle_resnet.models import build_model
from paddle_resnet.speed import plan_speed


def trained_a_little(name):
    """Weights and BN running statistics away from their initial values."""
    paddle.seed(0)
    model = build_model(name)
    optimizer = paddle.optimizer.Momentum(0.05, parameters=model.parameters())
    images = paddle.randn([16, 3, 32, 32])
    labels = paddle.randint(0, 10, [16])
    for _ in range(3):
        train_step(model, images, labels, optimizer)
    return model


# ResNet-20 covers the option-A shortcut, whose channel padding once crashed oneDNN;
# ResNet-9 and -18 projection shortcuts and pooling; DenseNet-40 concatenation.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet20", "plain20", "resnet9", "resnet18", "densenet40_k12",
                                  "simple_cnn"])
def test_inference_engine_gives_dygraph_predictions(name):
    model = trained_a_little(name)
    images = paddle.randn([37, 3, 32, 32])  # an odd batch: the program takes any size
    model.eval()
    with paddle.no_grad():
        expected = model(images).numpy()
    model.train()
    with eval_forward(model, "inference", "cpu", threads=1) as forward:
        got = forward(images).numpy()
        again = forward(images[:5]).numpy()
    assert model.training, "evaluation must leave a training model training"
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(again, expected[:5], rtol=1e-3, atol=1e-4)


def test_evaluation_exports_a_plain_copy_and_the_model_trains_on():
    """Each evaluation exports a new NCHW model with the training model's weights and
    statistics, never the training model itself: Paddle 3.0's jit.save left a model it
    traced with a speed path's PyLayer unable to take its next training step."""
    cfg = load_config(None, ["model.name=resnet20"])
    model = training_model("resnet20", plan_speed(speed_options(["conv=paddle"]), "cpu", 2))
    optimizer = paddle.optimizer.Momentum(0.05, parameters=model.parameters())
    images, labels = paddle.randn([8, 3, 32, 32]), paddle.randint(0, 10, [8])
    train_step(model, images, labels, optimizer)
    twin = nchw_twin(model, cfg)
    assert twin is not model and twin.data_format == "NCHW"
    assert ([type(layer) for layer in twin.sublayers()]
            == [type(layer) for layer in build_model("resnet20").sublayers()])
    for (name, value), twin_value in zip(model.state_dict().items(), twin.state_dict().values()):
        np.testing.assert_array_equal(twin_value.numpy(), value.numpy(), err_msg=name)
    exported = []
    with eval_forward(model, "inference", "cpu", nchw_twin=lambda: exported.append(
            nchw_twin(model, cfg)) or exported[-1]) as forward:
        forward(images)
    assert len(exported) == 1 and exported[0] is not model
    assert np.isfinite(float(train_step(model, images, labels, optimizer)[0]))


@pytest.mark.parametrize("layout, width", [("NCHW", 3), ("NHWC", 2)])
def test_flip_averages_each_image_with_its_mirror_along_the_width(layout, width):
    images = paddle.arange(2 * 3 * 4 * 5, dtype="float32").reshape([2, 3, 4, 5])
    if layout == "NHWC":
        images = images.transpose([0, 2, 3, 1])
    left = [slice(None)] * 4
    left[width] = 0
    right = list(left)
    right[width] = -1
    both = with_mirror(lambda x: x[tuple(left)], layout)(images)
    np.testing.assert_array_equal(
        both.numpy(), (images[tuple(left)].numpy() + images[tuple(right)].numpy()) / 2)


def moved(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """NCHW `images` with out[y, x] = images[y + dy, x + dx], zeros brought in."""
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    return padded[:, :, 2 + dy:2 + dy + images.shape[2], 2 + dx:2 + dx + images.shape[3]]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_shifted_moves_the_image_and_brings_in_zeros(layout):
    images = paddle.arange(1, 1 + 2 * 3 * 4 * 5, dtype="float32").reshape([2, 3, 4, 5])
    for dy, dx in [(1, 1), (-1, -1), (0, 2), (-2, 0), (0, 0)]:
        given = images if layout == "NCHW" else images.transpose([0, 2, 3, 1])
        got = shifted(given, layout, dy, dx)
        got = got if layout == "NCHW" else got.transpose([0, 3, 1, 2])
        np.testing.assert_array_equal(got.numpy(), moved(images.numpy(), dy, dx),
                                      err_msg=f"{dy}, {dx}")
    # a move of one pixel down-right: the last row and column come from outside
    one = shifted(images, "NCHW", 1, 1).numpy()
    assert (one[:, :, -1, :] == 0).all() and (one[:, :, :, -1] == 0).all()
    np.testing.assert_array_equal(one[:, :, 0, 0], images.numpy()[:, :, 1, 1])


def six_views(model, images: np.ndarray) -> np.ndarray:
    """The mean logits of each image and its mirror, as they are and moved one pixel
    up-left and down-right, by hand."""
    views = [moved(images, d, d) for d in (0, -1, 1)]
    views += [view[..., ::-1] for view in views]
    return np.mean([model(paddle.to_tensor(np.ascontiguousarray(v))).numpy() for v in views],
                   axis=0)


@pytest.mark.parametrize("tta", ["flip", "flip_shift"])
def test_test_time_views_are_the_same_with_either_engine(tta):
    model = trained_a_little("resnet20")
    images = paddle.randn([16, 3, 32, 32])
    model.eval()
    with paddle.no_grad():
        expected = (((model(images) + model(paddle.flip(images, axis=[3]))) / 2).numpy()
                    if tta == "flip" else six_views(model, images.numpy()))
        single = model(images).numpy()
    model.train()
    for engine in ("dygraph", "inference"):
        with eval_forward(model, engine, "cpu", threads=1, tta=tta) as forward:
            with paddle.no_grad():
                model.eval()
                got = forward(images).numpy()
                model.train()
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4, err_msg=engine)
    assert not np.allclose(single, expected, rtol=1e-3, atol=1e-4)
    with pytest.raises(ConfigError, match="eval.tta = 'mirror'; expected one of none, flip, "
                       "flip_shift"):
        with eval_forward(model, "dygraph", "cpu", tta="mirror"):
            pass


def test_engine_choice():
    assert resolve_engine("auto", "cpu") == "inference"
    assert resolve_engine("auto", "gpu:0") == "dygraph"
    assert resolve_engine("dygraph", "cpu") == "dygraph"
    with pytest.raises(ConfigError, match="eval.engine = inference runs on the CPU only"):
        resolve_engine("inference", "gpu:0")
    assert cpu_threads(3, 2) == 3
    assert cpu_threads(0, 1) >= 1


# Under dygraph the training model evaluates in its own layout (NHWC on the oneDNN path),
# under Paddle Inference an NCHW copy: the mirror must flip the width in both.
@pytest.mark.slow
@pytest.mark.parametrize("tta", ["none", "flip", "flip_shift"])
def test_training_reports_the_same_metrics_with_either_engine(tiny_cifar10, tmp_path, tta):
    summaries = {}
    for engine in ("dygraph", "inference"):
        cfg = load_config(None, [f"data.data_file={tiny_cifar10}",
                                 f"output_dir={tmp_path / engine}", "train.epochs=1",
                                 "train.batch_size=50", "log.visualdl=false",
                                 f"eval.engine={engine}", f"eval.tta={tta}"])
        summaries[engine] = Trainer(cfg, stream=open("/dev/null", "w")).fit()
    assert summaries["dygraph"]["test_top1"] == summaries["inference"]["test_top1"]
    assert summaries["dygraph"]["test_loss"] == pytest.approx(summaries["inference"]["test_loss"],
                                                              rel=1e-4)


@pytest.mark.slow
def test_eval_tool_names_its_engine(tiny_cifar10, tmp_path):
    cfg = load_config(None, [f"data.data_file={tiny_cifar10}", f"output_dir={tmp_path / 'run'}",
                             "train.epochs=1", "train.batch_size=50", "log.visualdl=false"])
    Trainer(cfg, stream=open("/dev/null", "w")).fit()
    reports = {}
    for engine in ("dygraph", "inference"):
        result = run_tool("eval", "-w", str(tmp_path / "run" / "latest.pdckpt"),
                          "-o", f"eval.engine={engine}", "--out", str(tmp_path / engine))
        assert result.returncode == 0, result.stderr
        assert f"eval.engine={engine}" in result.stdout
        reports[engine] = json.loads((tmp_path / engine / "eval_latest_test.json").read_text())
    assert reports["dygraph"]["confusion"] == reports["inference"]["confusion"]
    result = run_tool("eval", "-w", str(tmp_path / "run" / "latest.pdckpt"),
                      "-o", "eval.tta=flip", "--out", str(tmp_path / "flip"))
    assert result.returncode == 0, result.stderr
    assert "eval.engine=auto, float32, eval.tta=flip, batches of 256)" in result.stdout
    flipped = json.loads((tmp_path / "flip" / "eval_latest_test.json").read_text())
    assert flipped["samples"] == reports["inference"]["samples"]
    assert flipped["loss"] != pytest.approx(reports["inference"]["loss"], rel=1e-6)


@pytest.mark.skipif(not paddle.base.core.supports_bfloat16(), reason="needs AVX-512")
def test_bfloat16_evaluation_predicts_like_float32():
    model = trained_a_little("resnet20")
    images = paddle.randn([64, 3, 32, 32])
    with eval_forward(model, "inference", "cpu", threads=1) as forward:
        full = forward(images).numpy()
    with eval_forward(model, "inference", "cpu", threads=1, precision="bfloat16") as forward:
        half = forward(images).numpy()
    # bf16 keeps 8 bits of mantissa: close to float32, not equal to it.
    assert not np.array_equal(half, full)
    np.testing.assert_allclose(half, full, atol=0.1 * np.abs(full).max())
    assert (half.argmax(1) == full.argmax(1)).mean() >= 0.9


def test_bfloat16_is_refused_where_it_cannot_run():
    with pytest.raises(ConfigError, match="eval.precision = bfloat16 is for eval.engine=infer"):
        resolve_engine("auto", "gpu:0", "bfloat16")
    with pytest.raises(ConfigError, match="eval.precision = bfloat16 is for eval.engine=infer"):
        resolve_engine("dygraph", "cpu", "bfloat16")
    assert resolve_engine("auto", "cpu", "bfloat16") == "inference"


def openmp_threads():
    """The OpenMP thread count Paddle's kernels and oneDNN's run with: Intel's runtime in
    Paddle's CPU wheels (LD_DEBUG=bindings shows oneDNN bound to it)."""
    import ctypes
    import glob
    import os
    found = glob.glob(os.path.join(os.path.dirname(paddle.__file__), "libs", "libiomp5.so"))
    if not found:
        pytest.skip("this Paddle build ships no Intel OpenMP runtime to ask")
    return ctypes.CDLL(found[0]).omp_get_max_threads()


def test_a_process_with_several_threads_trains_on_them_after_an_evaluation(tiny_cifar10,
                                                                          tmp_path):
    """Paddle Inference leaves the process at one thread after its predictor ran; a
    one-process run (--nproc 1, the library's train) trained its later epochs on one."""
    if cpu_threads(0) < 2:
        pytest.skip("needs two cores for a process with several threads")
    cfg = load_config(None, [f"data.data_file={tiny_cifar10}", "model.name=resnet20",
                             "train.epochs=2", "train.batch_size=32", "data.test_samples=64",
                             "eval.engine=inference", f"output_dir={tmp_path}/run"])
    trainer = Trainer(cfg)
    threads = []
    trainer._step_hook = lambda t: threads.append(openmp_threads())
    trainer.fit()
    assert set(threads) == {cpu_threads(0)}, threads
