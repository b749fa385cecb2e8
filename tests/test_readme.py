import os
import re

import pytest

from conftest import ROOT


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def test_ci_runs_exactly_the_readme_test_command():
    setup = re.search(r"## Set up.*?```bash\n(.*?)```", read("README.md"), re.S).group(1)
    commands = [line for line in setup.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[1] in read(".ci/run").splitlines()
    assert "configs/quickstart.yaml" in commands[0]


# A results row: | model | paper | **ours** | ... | [`file.pdckpt`](pretrained/card.md) |
RESULT_ROW = re.compile(r"^\| (?P<model>[^|]+) \| (?P<paper>[\d.]+)% \| \*\*(?P<ours>[\d.]+)%\*\* "
                        r"\|.*\[`(?P<file>[\w.]+\.pdckpt)`\]\((?P<card>[\w/.]+\.md)\) \|$",
                        re.MULTILINE)
# A model card's measured line (release.py writes it).
CARD_TOP1 = re.compile(r"^\| test top-1 / top-5 / loss, (?:all )?10,000 test images \| "
                       r"\*\*([\d.]+)%\*\*", re.MULTILINE)


def result_rows(path):
    return list(RESULT_ROW.finditer(read(path)))


def test_the_readme_is_a_front_page():
    assert len(read("README.md").splitlines()) <= 150


@pytest.mark.parametrize("page, prefix", [("README.md", ""), ("docs/results.md", "docs/")])
def test_every_result_with_a_checkpoint_is_its_model_cards_number(page, prefix):
    rows = result_rows(page)
    shipped = sorted(f for f in os.listdir(os.path.join(ROOT, "pretrained"))
                     if f.endswith(".pdckpt"))
    assert sorted({row["file"] for row in rows}) == shipped
    for row in rows:
        card = os.path.normpath(os.path.join(os.path.dirname(page), row["card"]))
        assert os.path.basename(card) == row["file"].replace(".pdckpt", ".md")
        assert CARD_TOP1.search(read(card)).group(1) == row["ours"], (page, row["file"])


def test_the_python_example_names_only_what_the_package_exports():
    import paddle_resnet
    example = re.search(r"```python\n(.*?)```", read("README.md"), re.S).group(1)
    used = set(re.findall(r"\bpr\.(\w+)", example))
    assert used and used <= set(paddle_resnet.__all__), used - set(paddle_resnet.__all__)


def _row(rows, **match):
    return next(r for r in rows if all(r[k] == v for k, v in match.items()))


def _vs(d, variant, against):
    return (_row(d["rows"], variant=variant)["images_per_s"]
            / _row(d["rows"], variant=against)["images_per_s"])


# Each row of the README's performance table (its first cell) -> its benchmark file and
# the ratio it reads there.
PERF_SOURCES = {
    "quickstart training vs PyTorch 2.13 channels_last + bf16 autocast": (
        "quickstart_speed_two_passes.json",
        lambda d: _row(d["rows"], variant="paddle_resnet (default)")["vs_baseline"]),
    "the same vs PyTorch 2.13 default (float32)": (
        "quickstart_speed_shared_memory_again.json",
        lambda d: _vs(d, "paddle_resnet (default)", "torch")),
    "ResNet-18 training (batch 150) vs PyTorch 2.13 channels_last + bf16 autocast": (
        "frameworks_resnet18_two_passes.json",
        lambda d: _vs(d, "paddle, 1 process per core (the default)",
                      "torch channels_last bf16")),
    "DenseNet-40 training (batch 64) vs PyTorch 2.13 channels_last + bf16 autocast": (
        "frameworks_densenet40_shared_memory.json",
        lambda d: _vs(d, "paddle, 1 process per core (the default)",
                      "torch channels_last bf16")),
    "quickstart training vs PyTorch 2.13 default, both float32 (no bf16 kernels)": (
        "quickstart_speed_avx2.json",
        lambda d: _row(d["rows"], variant="paddle_resnet (default)")["vs_torch"]),
    "quickstart training vs PyTorch 2.13 channels_last, both float32 on AVX2 kernels": (
        "quickstart_speed_as_avx2_8lanes.json",
        lambda d: _row(d["rows"], variant="paddle_resnet (default)")["vs_baseline"]),
    "evaluation (Paddle Inference + oneDNN) vs dygraph, ResNet-20": (
        "frameworks.json", lambda d: _row(d["rows"], mode="eval", model="resnet20",
                                          variant="paddle inference")["vs_dygraph"]),
    "batched augmentation vs the notebook's per-image pipeline": (
        "data_pipeline.json", lambda d: _row(
            d["rows"], variant="standard: paddle_resnet whole-batch, data.augment_on=host")[
            "ratio"]),
}
PERF_ROW = re.compile(r"^\| (?P<what>[^|]+?) \| (?P<ratio>[\d.]+)x \|[^|]+\| "
                      r"\[json\]\(benchmarks/results/(?P<file>[\w.]+\.json)\) \|$", re.MULTILINE)


def test_every_readme_performance_ratio_is_its_benchmark_files():
    import json
    rows = list(PERF_ROW.finditer(read("README.md")))
    assert sorted((r["what"], r["file"]) for r in rows) == sorted(
        (what, file) for what, (file, _) in PERF_SOURCES.items())
    for row in rows:
        with open(os.path.join(ROOT, "benchmarks", "results", row["file"]), encoding="utf-8") as f:
            measured = PERF_SOURCES[row["what"]][1](json.load(f))
        decimals = len(row["ratio"].split(".")[1]) if "." in row["ratio"] else 0
        assert round(measured, decimals) == float(row["ratio"]), row["what"]


# docs/results.md's Fig. 6 table -> the comparison.md that compare.py wrote from the runs.
FIG6_ROW = re.compile(r"^\| (?P<run>(?:plain|ResNet)-\d+) \|[^|]+\|[^|]+\| "
                      r"\**(?P<train_error>[\d.]+%)\** \|[^|]+\| \**(?P<top1>[\d.]+%)\** \|",
                      re.MULTILINE)


def results_section(title):
    return read("docs/results.md").split(f"### {title}\n")[1].split("\n### ")[0]


def final_top1_and_train_error(comparison):
    """run -> (final top-1, final train error), from a comparison.md compare.py wrote."""
    measured = {}
    for line in read(comparison).splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        measured[cells[0]] = (cells[6], cells[7])
    return measured


def test_the_batchnorm_share_table_is_the_runs_comparison():
    """docs/distributed.md's images-per-process table: each cell from the runs' comparison
    (run nN is --nproc N, seed 0; nN_s1 seed 1; – where a seed was not run)."""
    runs = final_top1_and_train_error("docs/results/bn_share/comparison.md")
    table = read("docs/distributed.md").split("| final train error, seed 0 | seed 1 |")[1]
    for processes in (2, 4, 16, 32):
        seed0 = runs.get(f"n{processes}") or runs[f"n{processes}_s0"]
        seed1 = runs.get(f"n{processes}_s1", ("–", "–"))
        assert (f"| {processes} | {128 // processes} | {seed0[0]} | {seed1[0]} | {seed0[1]} | "
                f"{seed1[1]} |") in table, processes


def test_the_fig6_table_is_the_runs_comparison():
    section = results_section("He et al. Fig. 6 on the official images")
    shown = {m["run"].lower().replace("-", ""): (m["top1"], m["train_error"])
             for m in FIG6_ROW.finditer(section)}
    assert shown == final_top1_and_train_error("docs/results/fig6_lossless/comparison.md")


# docs/results.md's ResNet-110 against DenseNet-40 table, one row per run and seed.
DENSENET_ROW = re.compile(r"^\| (?P<run>\w+_seed\d) \| \d \| (?P<train_error>[\d.]+%) \| "
                          r"[^|]*\*\*(?P<top1>[\d.]+%)\*\* \|", re.MULTILINE)


def test_the_resnet_against_densenet_table_is_the_runs_comparison():
    section = results_section("ResNet-110 against DenseNet-40 on the official images")
    shown = {m["run"]: (m["top1"], m["train_error"]) for m in DENSENET_ROW.finditer(section)}
    measured = final_top1_and_train_error("docs/results/resnet_vs_densenet_lossless/comparison.md")
    assert len(shown) == 4
    # the same comparison holds the 7-epoch ResNet-110 the section gives in prose
    top1, train_error = measured.pop("resnet110_7_epochs")
    assert f"**{top1}** (training error {train_error})" in section
    assert shown == measured


def test_the_fused_densenet_run_is_its_comparison():
    """The DenseNet-40 run after its layers were fused: results.md's numbers are the run's."""
    section = " ".join(results_section("ResNet-110 against DenseNet-40 on the official images")
                       .split())
    row = read("docs/results/densenet40_fused/comparison.md").splitlines()[2]
    top1, train_error, wall, rate = [c.strip() for c in row.strip("|").split("|")][6:10]
    hours, minutes, seconds = (int(x) for x in wall.split(":"))
    assert f"ended at **{top1}** (training error {train_error})" in section
    assert f"**{hours * 60 + minutes} min {seconds} s** at {rate} images/s" in section


def test_the_compare_walkthrough_table_is_its_comparison():
    page = read("docs/compare.md").split("## Walkthrough")[1]
    table = read("docs/results/resnet_vs_densenet_subset/comparison.md").strip()
    assert "results/resnet_vs_densenet_subset/" in page
    assert table in page


# docs/results.md's two-view seed table is the record of configs/resnet20_onecycle30_flip.yaml;
# the README's config row and the config's own comment quote its means, and the runs'
# comparison.md (written by compare.py from their metrics) holds the in-run numbers.
TWO_VIEW_ROW = re.compile(r"^  \| (?P<seed>\d) \| \*\*(?P<two>[\d.]+)%\*\* \| (?P<one>[\d.]+)% \| "
                          r"\d+ min", re.MULTILINE)


def test_the_two_view_results_are_the_runs_and_the_readme_quotes_them():
    import statistics
    rows = {int(m["seed"]): m for m in TWO_VIEW_ROW.finditer(read("docs/results.md"))}
    assert sorted(rows) == [0, 1, 2]
    two = [float(rows[s]["two"]) for s in range(3)]
    one = [float(rows[s]["one"]) for s in range(3)]
    quoted = f"{statistics.mean(two):.2f}% ± {statistics.stdev(two):.2f}"
    assert quoted in read("README.md") and quoted in read("docs/results.md")
    assert f"one view {statistics.mean(one):.2f}% ± {statistics.stdev(one):.2f}" in read(
        "docs/results.md")
    assert quoted.replace("±", "+-") in read("configs/resnet20_onecycle30_flip.yaml")
    in_run = final_top1_and_train_error("docs/results/onecycle30_flip/comparison.md")
    # seed 0 ran on one view (the 40-epoch config with overrides), seeds 1-2 on two
    assert in_run["r30s0"][0] == f"{one[0]:.2f}%"
    assert [in_run[f"flip_s{s}"][0] for s in (1, 2)] == [f"{two[s]:.2f}%" for s in (1, 2)]


# docs/results.md's six-view seed table is the record of
# configs/resnet20_onecycle26_alternating.yaml: its six-view column is what the runs logged
# (comparison.md), and the README, the results table and the config quote its means.
SIX_VIEW_ROW = re.compile(r"^  \| (?P<seed>\d) \| \*\*(?P<six>[\d.]+)%\*\* \| (?P<two>[\d.]+)% \| "
                          r"(?P<one>[\d.]+)% \| \**(?P<wall>\d+ min \d+ s)\** \((?P<loop>\d+ min "
                          r"\d+ s)\) \| (?P<ips>[\d,.]+) \|", re.MULTILINE)


def test_the_six_view_results_are_the_runs_and_the_readme_quotes_them():
    import statistics
    rows = {int(m["seed"]): m for m in SIX_VIEW_ROW.finditer(read("docs/results.md"))}
    assert sorted(rows) == [0, 1, 2]
    table = "docs/results/onecycle26_alternating/comparison.md"
    in_run = final_top1_and_train_error(table)
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")]
             for line in read(table).splitlines()[2:]}
    for seed, row in rows.items():
        assert in_run[f"r26_s{seed}"][0] == f"{row['six']}%"
        h, m, sec = (int(x) for x in lines[f"r26_s{seed}"][9].split(":"))
        assert row["loop"] == f"{h * 60 + m} min {sec} s"
        assert row["ips"].replace(",", "") == lines[f"r26_s{seed}"][10]
    means = {}
    for views in ("six", "two", "one"):
        values = [float(rows[s][views]) for s in range(3)]
        means[views] = f"{statistics.mean(values):.2f}% ± {statistics.stdev(values):.2f}"
    results = read("docs/results.md")
    assert f"; {means['six']}); two views {means['two']}, one view {means['one']} |" in results
    assert f"six test views (`eval.tta=flip_shift`), {means['six']} in" in read("README.md")
    config = read("configs/resnet20_onecycle26_alternating.yaml")
    assert f"on six views ({means['six']};".replace("±", "+-") in config
    assert f"two views\n# {means['two']}, one view {means['one']})".replace("±", "+-") in config


ONE_VIEW_40_ROW = re.compile(
    r"^\| ResNet-20 \| 91\.25% \| \*\*(?P<s0>[\d.]+)%\*\*, \*\*(?P<s1>[\d.]+)%\*\* and "
    r"\*\*(?P<s2>[\d.]+)%\*\* \(seeds 0, 1, 2; (?P<quoted>[^)]+)\) \| the same cut to 40 epochs",
    re.M)


def test_the_40_epoch_results_are_the_runs_and_the_readme_quotes_them():
    """results.md's table row of the 40-epoch seeds is the record: its mean and spread, and
    the seeds as the config lists them, are what README, results.md and the config say."""
    import statistics
    row = ONE_VIEW_40_ROW.search(read("docs/results.md"))
    assert row is not None
    seeds = [float(row[f"s{s}"]) for s in range(3)]
    quoted = f"{statistics.mean(seeds):.2f}% ± {statistics.stdev(seeds):.2f}"
    assert row["quoted"] == quoted
    assert quoted in read("README.md")
    assert f"**{quoted}**" in read("docs/results.md")  # the section below the table
    config = " ".join(read("configs/resnet20_onecycle40.yaml").replace("#", " ").split())
    listed = ", ".join(f"{s:.2f}%" for s in seeds[:2]) + f" and {seeds[2]:.2f}%"
    assert f"ended at {listed} ({quoted.replace('±', '+-')})" in config


# docs/performance.md's two kernel tables -> the onednn_kernels.py files they were read from
# (ResNet-20's per call, ResNet-18's summed by group).
def performance_table(header):
    """label -> numeric cells of the table whose header row starts with `header`."""
    table = read("docs/performance.md").split(f"| {header}")[1].split("\n\n")[0]
    return {cells[0].strip("*"): [float(c.strip("*").replace(",", "")) for c in cells[1:]]
            for cells in ([c.strip() for c in line.strip("|").split("|")]
                          for line in table.splitlines()[2:])}


def kernel_rows(file):
    import json
    measured = json.loads(read(f"benchmarks/results/{file}"))
    for row in measured["rows"]:
        shape = dict(re.findall(r"([a-z]+)(\d+)", row["shape"]))
        yield row["primitive"], shape, row["package"], row["torch"]
    yield "total", {}, {"ms_per_step": measured["total_ms_per_step"]["package"]}, \
        {"ms_per_step": measured["total_ms_per_step"]["torch"]}


def test_the_resnet20_kernel_table_is_its_benchmark_file():
    shown = performance_table("convolution, batch 64, one thread")
    kinds = {"forward_training": "forward", "backward_data": "input gradient",
             "backward_weights": "weight gradient"}
    measured = {}
    for primitive, shape, package, torch in kernel_rows("onednn_kernels.json"):
        kind = kinds.get(primitive.split()[-1])
        if primitive == "total":
            measured["all oneDNN primitives, ms per step"] = (
                package["ms_per_step"], torch["ms_per_step"], 1)
            continue
        if shape.get("ic") == shape.get("oc") and shape.get("sh") == "1":
            size = f", {shape['ih']}x{shape['iw']}" if kind == "forward" else ""
            label = f"{shape['ic']} channels{size}: {kind}"
        elif shape.get("ic") == "3" and kind == "forward":
            label = f"the stem (3 to {shape['oc']} channels): forward"
        else:
            continue
        measured[label] = (package["ms_per_step"] / package["calls_per_step"],
                           torch["ms_per_step"] / torch["calls_per_step"], 2)
    assert shown.keys() == measured.keys()
    for label, (package, torch, decimals) in measured.items():
        assert shown[label] == [round(package, decimals), round(torch, decimals),
                                round(package / torch, 2)], label


def test_the_resnet18_kernel_table_sums_its_benchmark_file():
    shown = performance_table("ResNet-18, batch 75, one thread, ms per step")
    groups = {"the 3x3 convolutions of the four stages (forward, input and weight gradients)":
              lambda primitive, s: s.get("kh") == "3" and s.get("ic") != "3",
              "the three projections' 1x1 convolutions": lambda primitive, s: s.get("kh") == "1",
              "the stem's convolution": lambda primitive, s: s.get("ic") == "3",
              "reorders (and PyTorch's one matmul, 0.1 ms)":
              lambda primitive, s: primitive in ("reorder", "matmul"),
              "all oneDNN primitives": lambda primitive, s: primitive == "total"}
    assert shown.keys() == groups.keys()
    rows = list(kernel_rows("onednn_kernels_resnet18.json"))
    for label, member in groups.items():
        package = sum(p["ms_per_step"] for primitive, s, p, _ in rows
                      if p and member(primitive, s))
        torch = sum(t["ms_per_step"] for primitive, s, _, t in rows
                    if t and member(primitive, s))
        assert shown[label] == [round(package, 1), round(torch, 1),
                                round(package / torch, 2)], label


def test_the_notebooks_resnet18_seeds_are_their_runs_comparisons():
    """results.md's two ResNet-18 seeds, their mean and the results-table row are the
    final top-1 that compare.py wrote from each run."""
    seed0, seed1 = (float(top1.rstrip("%"))
                    for folder in ("resnet18_notebook", "resnet18_notebook_seed1")
                    for top1, _ in final_top1_and_train_error(
                        f"docs/results/{folder}/comparison.md").values())
    mean = f"{(seed0 + seed1) / 2:.2f}%"
    seed0, seed1 = f"{seed0:.2f}%", f"{seed1:.2f}%"
    section = results_section("The notebook's ResNet-18 to epoch 20")
    assert f"| **{seed0}** | 84.15% |" in section and f"| **{seed1}** | 84.15% |" in section
    assert f"ended at **{seed1}**" in section
    assert f"averages **{mean}** ({seed0} and {seed1})" in section
    assert f"| 84.15% | {seed0} and **{seed1}** (seeds 0, 1; {mean} on average;" in read(
        "docs/results.md")


def test_the_run_with_shared_memory_is_its_comparison():
    """results.md's 30-epoch run with gradients through shared memory quotes compare.py's
    table of its metrics: DataParallel's top-1 and train error, and its time in the loop."""
    table = "docs/results/onecycle30_flip_shm/comparison.md"
    in_run = final_top1_and_train_error(table)
    cells = read(table).splitlines()[2].split("|")
    h, m, s = (int(x) for x in cells[9].strip().split(":"))
    results = " ".join(read("docs/results.md").split())
    assert f"({h * 60 + m} min {s} s in the loop)" in results
    kept = final_top1_and_train_error("docs/results/onecycle30_flip_kept/comparison.md")
    assert in_run["f30_s1"] == kept["flipk_s1"] == ("91.79%", "5.79%")
    assert f"train error {in_run['f30_s1'][1]}" in results


def test_the_runs_with_freed_memory_kept_are_their_comparison():
    """results.md's re-timed 30-epoch seeds and the 25-epoch run quote compare.py's table
    of their metrics (top-1 and time in the loop), and the runs before keep their numbers."""
    in_run = final_top1_and_train_error("docs/results/onecycle30_flip_kept/comparison.md")
    loop = {line.split("|")[1].strip(): line.split("|")[9].strip() for line in
            read("docs/results/onecycle30_flip_kept/comparison.md").splitlines()[2:]}
    results = " ".join(read("docs/results.md").split())
    for run, seconds in (("flipk_s2", "26 min 27 s in the loop"),
                         ("flipk_s1", "24 min 31 s in the loop"),
                         ("e25_s0", "20 min 45 s in the loop")):
        h, m, s = (int(x) for x in loop[run].split(":"))
        assert f"{h * 60 + m} min {s} s in the loop" == seconds, run
        assert seconds in results, run
    assert in_run["flipk_s1"][0] == in_run["flip_s1"][0] == "91.79%"
    assert in_run["flipk_s2"][0] == in_run["flip_s2"][0] == "91.37%"
    assert f"ended at **{in_run['e25_s0'][0]} on two views**" in results


def test_the_page_fault_table_is_its_benchmark_file():
    import json
    table = read("docs/performance.md").split("| where | freed memory |")[1].split("\n\n")[0]
    shown = [[c.strip() for c in line.strip("|").split("|")[1:]]
             for line in table.splitlines()[2:]]
    measured = json.loads(read("benchmarks/results/page_faults.json"))["rows"]
    assert [row[0] for row in shown] == [r["memory"] for r in measured]
    for cells, row in zip(shown, measured):
        assert cells[1:] == [f"{round(row['faults']):,}", f"{row['kernel_ms']:.1f}",
                             f"{row['wall_ms']:.1f}"], row["memory"]
    glibc, kept = measured[2:]
    assert f"**{glibc['wall_ms'] / kept['wall_ms']:.2f}x**" in read("docs/performance.md")


def test_the_densenet_table_is_its_benchmark_file():
    """performance.md's DenseNet-40 against PyTorch: every median, repeat and ratio as
    frameworks.py wrote them."""
    import json
    table = read("docs/performance.md").split(
        "| DenseNet-40 training, batch 64, 2 cores | images/s (median) | repeats | package vs it |"
    )[2].split("\n\n")[0]
    shown = [[c.strip().strip("*") for c in line.strip("|").split("|")[1:3]]
             for line in table.splitlines()[2:]]
    rows = json.loads(read("benchmarks/results/frameworks_densenet40_fused.json"))["rows"]
    assert shown == [[f"{r['images_per_s']:.1f}", ", ".join(f"{x:.1f}" for x in r["runs"])]
                     for r in rows]
    fused, per_layer, torch_fast, torch_default = (r["images_per_s"] for r in rows)
    for ratio in (fused / per_layer, fused / torch_fast, fused / torch_default):
        assert f"{ratio:.2f}x" in table


def test_the_two_pass_exchange_tables_are_their_benchmark_files():
    """performance.md's gradient-exchange table and the steps against PyTorch after it:
    every median, repeat and ratio as gradient_exchange.py and frameworks.py wrote them."""
    import json
    page = read("docs/performance.md")
    exchange = json.loads(read("benchmarks/results/gradient_exchange.json"))["rows"]
    table = page.split("| per step, 20 calls x 3 |")[1].split("\n\n")[0]
    for model, label, decimals in (("resnet20", "ResNet-20", 2), ("resnet18", "ResNet-18", 1)):
        now, before = (_row(exchange, model=model, checkout=checkout)["ms_per_call"]
                       for checkout in ("this checkout", "at /tmp/before"))
        line = next(line for line in table.splitlines() if line.startswith(f"| {label} "))
        assert line.replace("**", "").endswith(f"| {now:.{decimals}f} | {before:.{decimals}f} |")
        bold = "**" if model == "resnet18" else ""  # the summary row, as it reads
        assert f"{label} {bold}{now:.{decimals}f} vs {before:.{decimals}f} ms{bold}" in page
    table = page.split("| training step | the default | DataParallel |")[1].split("\n\n")[0]
    for name, label in (("densenet40_shared_memory", "DenseNet-40 (k = 12)"),
                        ("resnet18_two_passes", "ResNet-18")):
        d = json.loads(read(f"benchmarks/results/frameworks_{name}.json"))
        default, data_parallel, fast, torch_default = (r["images_per_s"] for r in d["rows"])
        line = next(line for line in table.splitlines() if line.startswith(f"| {label},"))
        runs = ", ".join(f"{x:.0f}" for x in d["rows"][0]["runs"])
        assert f"| {default:.1f} ({runs}) | {data_parallel:.1f} | {fast:.1f} " in line
        assert f"| {torch_default:.1f} | **{default / fast:.2f}x** (" in line
        per_repeat = [a / b for a, b in zip(d["rows"][0]["runs"], d["rows"][2]["runs"])]
        assert line.endswith("(" + ", ".join(f"{r:.2f}x" for r in per_repeat)
                             + " per repeat) |")
        # the summary row quotes the same run
        assert (f"**{default / fast:.2f}x** ({default:.1f} against {fast:.1f} images/s; "
                f"{min(per_repeat):.2f}x-{max(per_repeat):.2f}x per repeat") in page


def test_the_quickstart_after_the_two_pass_exchange_is_its_benchmark_file():
    """performance.md's quickstart table of 2026-12-05 late morning and its summary row:
    medians, repeats and ratios as quickstart_speed.py wrote them."""
    import json
    page = read("docs/performance.md")
    package, torch = json.loads(read("benchmarks/results/quickstart_speed_two_passes.json"))[
        "rows"]
    table = page.split("| ResNet-20 quickstart training, 29,440 images timed from outside, "
                       "x 4 |")[1].split("\n\n")[0]
    per_repeat = package["vs_baseline_per_repeat"]
    spread = f"{min(per_repeat):.2f}x-{max(per_repeat):.2f}x"
    for row, bold in ((package, "**"), (torch, "")):
        runs = ", ".join(f"{x:.0f}" for x in row["runs"])
        assert f"| {bold}{row['images_per_s']:,.1f}{bold} | {runs} | " in table
    assert f"| **{package['vs_baseline']:.2f}x** | {spread} |" in table
    assert (f"**{package['vs_baseline']:.2f}x** ({package['images_per_s']:,.1f} against "
            f"{torch['images_per_s']:,.1f} images/s; {spread} per repeat, "
            f"{len(per_repeat)} repeats)") in page


def test_the_eval_batch_table_is_its_benchmark_file():
    """performance.md's eval-batch table, its summary row and the schema's description:
    medians, repeats and ratios as benchmarks/eval_batch.py wrote them."""
    import json
    page = read("docs/performance.md")
    rows = json.loads(read("benchmarks/results/eval_batch.json"))["rows"]
    table = page.split("| `tools/eval.py`, 1,800 test images timed from outside, x 3 |")[1]
    table = table.split("\n\n")[0]
    for model, label in (("densenet40_k12", "DenseNet-40"), ("resnet18", "ResNet-18")):
        chosen, before = (_row(rows, model=model, eval_batch_size=b) for b in (0, 256))
        ratio = chosen["images_per_s"] / before["images_per_s"]
        runs = [", ".join(f"{x:.0f}" for x in r["runs"]) for r in (chosen, before)]
        assert (f"| {label} | {chosen['images_per_s']:,.1f} ({runs[0]}) | "
                f"{before['images_per_s']:,.1f} ({runs[1]}) | **{ratio:.2f}x** |") in table
        assert f"{label} **{ratio:.2f}x**" in page  # the summary row
        if model == "densenet40_k12":
            assert f"DenseNet-40 {ratio:.2f}x as fast" in read("paddle_resnet/schema.py")
    # the runs inside training: seconds and page faults as eval_batch_in_training.md shows
    # them, 256 first in each pair
    record = read("benchmarks/results/eval_batch_in_training.md")
    runs = re.findall(r'eval.batch_size=(\d+) repeat \d: "eval_seconds": ([\d.]+) .* page '
                      r"faults (\d+)", record)
    before = [(float(t), int(f)) for b, t, f in runs if b == "256"]
    chosen = [(float(t), int(f)) for b, t, f in runs if b == "0"]
    text = " ".join(page.split())
    assert (f"from {before[0][0]:.1f} s and {before[1][0]:.1f} s to {chosen[0][0]:.1f} s and "
            f"{chosen[1][0]:.1f} s ({before[0][0] / chosen[0][0]:.2f}x and "
            f"{before[1][0] / chosen[1][0]:.2f}x") in text
    assert (f"from {before[0][1] / 1e6:.1f} and {before[1][1] / 1e6:.1f} million to "
            f"{chosen[0][1] / 1e6:.2f} million") in text


def test_the_fused_densenet_step_table_is_its_benchmark_files():
    """performance.md's fused-vs-per-layer DenseNet table and summary row: speed_paths.py's
    JSON, and the ratio quoted for the default in the schema's description."""
    import json
    page = read("docs/performance.md")
    table = page.split("| batch 32, 1 of 2 processes (`")[1].split("\n\n")[0]
    for model, label in (("densenet40", "DenseNet-40"), ("densenet_bc_100", "DenseNet-BC-100")):
        per_layer, fused = json.loads(read(f"benchmarks/results/speed_paths_{model}.json"))["rows"]
        ratio = f"{fused['vs_first']:.2f}x"
        assert (f"| {label} | {per_layer['images_per_s']:.1f} | {fused['images_per_s']:.1f} | "
                f"**{ratio}** |") in table
        assert f"**{ratio}** {label}" in page  # the summary row
        if model == "densenet40":
            assert f"{ratio} DenseNet-40's" in read("paddle_resnet/schema.py")


def test_the_24_epoch_runs_are_their_comparison_and_views_file():
    """results.md's 24-epoch table quotes compare.py's table of the runs (the views each
    evaluated as it ran) and its view sets benchmarks/tta_views.py's JSON of seed 0's
    alternating run, whose own six views are that run's number."""
    import json
    in_run = final_top1_and_train_error("docs/results/onecycle24_views/comparison.md")
    results = " ".join(read("docs/results.md").split())
    table = results.split("| seed, flips | one view | two views | six views |")[1]
    assert f"| 0, random | 90.41% | {in_run['e24_s0'][0]} | 91.27% |" in table
    assert f"| 0, alternating | 90.42% | 91.37% | **{in_run['a24_s0'][0]}** |" in table
    assert f"| 1, alternating | 90.23% | 90.93% | **{in_run['v24_s1'][0]}** |" in table
    views = json.loads(read("benchmarks/results/tta_views_onecycle24_alternating_s0.json"))
    assert f"{views['flip_shift_in_package']:.2f}%" == in_run["a24_s0"][0]
    quoted = {"one view": 0, "two views": 1, "the diagonal pair (`flip_shift`, 6 passes)": 2,
              "the other diagonal": 3, "both diagonals (10)": 4, "the four axis moves (10)": 5,
              "all eight moves (18)": 6, "two-pixel diagonal moves": 7}
    for words, row in quoted.items():
        assert f"{words} {views['rows'][row]['top1']:.2f}%" in results, words


# docs/performance.md's "Without bf16 kernels" and "Several threads" tables -> the
# speed_paths.py and quickstart_speed.py files they were read from.
AVX2_STEP_TABLES = {
    "float32, AVX2 code, 16-float vectors": {
        "ResNet-20, batch 64": ("speed_paths_avx2_resnet20.json", "fused"),
        "DenseNet-40, batch 32": ("speed_paths_avx2_densenet40.json", "default"),
        "DenseNet-BC-100, batch 32": ("speed_paths_avx2_densenet_bc_100.json", "default")},
    "float32, AVX2 code, 8-float vectors": {
        "ResNet-20, batch 64": ("speed_paths_avx2_8lanes_resnet20.json", "fused"),
        "ResNet-18, batch 64": ("speed_paths_avx2_8lanes_resnet18.json", "fused"),
        "DenseNet-40, batch 32": ("speed_paths_avx2_8lanes_densenet40.json", "fused")},
    "bf16 inputs, two threads in one process": {
        "ResNet-20, batch 128": ("speed_paths_two_threads_resnet20_b128.json", "fused"),
        "ResNet-20, batch 32": ("speed_paths_two_threads_resnet20_b32.json", "fused"),
        "ResNet-18, batch 64": ("speed_paths_two_threads_resnet18.json", "fused"),
        "DenseNet-40, batch 32": ("speed_paths_two_threads_densenet40.json", "fused")}}

# performance.md's table of training's BN on oneDNN against Paddle's: row -> its file
NORM_TABLE = {
    "ResNet-50, batch 32": "speed_paths_two_threads_resnet50_norm.json",
    "ResNet-50, batch 128": "speed_paths_two_threads_resnet50_b128_norm.json",
    "ResNet-20, batch 128, the per-layer path (`speed.fused_block=false`)":
        "speed_paths_two_threads_resnet20_per_layer_norm.json",
    "ResNet-20, batch 128, the fused blocks (the default; only the stem's BN changes)":
        "speed_paths_two_threads_resnet20_fused_norm.json"}


def rate_and_runs(row) -> str:
    return f"{row['images_per_s']:.1f} ({', '.join(f'{r:.0f}' for r in row['runs'])})"


def table_rows(header):
    """The last table of performance.md whose header starts so (an older one may share it)."""
    table = read("docs/performance.md").split(f"| {header} |")[-1].split("\n\n")[0]
    return {cells[0]: cells[1:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:])}


def test_the_avx2_tables_are_their_benchmark_files():
    import json
    for header, sources in AVX2_STEP_TABLES.items():
        rows = table_rows(header)
        assert sorted(rows) == sorted(sources), header
        for label, (file, fused) in sources.items():
            measured = {r["variant"]: r for r in json.loads(
                read(f"benchmarks/results/{file}"))["rows"]}
            per_layer, fused_cell, ratio = rows[label]
            assert per_layer == rate_and_runs(measured["per_layer"]), (header, label)
            assert fused_cell == rate_and_runs(measured[fused]), (header, label)
            assert ratio.strip("*") == f"{measured[fused]['vs_first']:.2f}x", (header, label)
    def ratios(header):
        return [f"{json.loads(read(f'benchmarks/results/{file}'))['rows'][1]['vs_first']:.2f}x"
                for file, _ in AVX2_STEP_TABLES[header].values()]
    # the summary rows and the schema's description quote the tables
    performance, config = read("docs/performance.md"), " ".join(read("docs/config.md").split())
    eight = ratios("float32, AVX2 code, 8-float vectors")
    two = ratios("bf16 inputs, two threads in one process")
    for quoted, where in (
            (f"**{eight[0]}** ResNet-20, {eight[1]} ResNet-18, **{eight[2]}** DenseNet-40 with "
             "the passes in 8-float vectors", performance),
            (f"in float32 (AVX2 code) {eight[0]} and {eight[2]}", config),
            (f"**{two[0]}** ResNet-20 ({two[1]} at batch 32), {two[2]} ResNet-18, **{two[3]}** "
             "DenseNet-40: the default there since", performance),
            (f"with two threads in one process {two[0]} and {two[3]}", config)):
        assert quoted in where, quoted
    quickstart = json.loads(read("benchmarks/results/quickstart_speed_as_avx2_8lanes.json"))
    rows = table_rows("ResNet-20 quickstart training as on an AVX2 host, 19,200 images timed, x 3")
    assert len(rows) == len(quickstart["rows"]) == 3
    for row, cells in zip(quickstart["rows"], rows.values()):
        assert cells[0] == f"{row['images_per_s']:.1f}"
        assert cells[1] == ", ".join(f"{r:.0f}" for r in row["runs"])
        assert cells[2].strip("*").startswith(f"{row['vs_baseline']:.2f}x")


def test_the_onednn_norm_table_is_its_benchmark_files():
    import json
    rows = table_rows("two threads in one process, bf16 inputs")
    assert sorted(rows) == sorted(NORM_TABLE)
    ratios = {}
    for label, file in NORM_TABLE.items():
        measured = {r["variant"]: r for r in json.loads(
            read(f"benchmarks/results/{file}"))["rows"]}
        paddles, onednns, ratio = rows[label]
        assert paddles == rate_and_runs(measured["paddle_norm"]), label
        assert onednns == rate_and_runs(measured["onednn_norm"]), label
        ratios[file] = f"{measured['onednn_norm']['vs_first']:.2f}x"
        assert ratio.strip("*") == ratios[file], label
    # the schema's description of the default quotes them
    config = " ".join(read("docs/config.md").split())
    per_layer = ratios["speed_paths_two_threads_resnet20_per_layer_norm.json"]
    bottlenecks = ratios["speed_paths_two_threads_resnet50_norm.json"]
    assert f"false: {per_layer} ResNet-20's step in one process on 2 cores" in config
    assert f"off with the fused operators ({bottlenecks} ResNet-50's step there)" in config
