from setuptools import find_packages, setup

setup(
    name="paddle_resnet",
    version="0.1.0",
    description="Residual networks on CIFAR with PaddlePaddle: a faithful, reproducible "
                "reproduction with plain and DenseNet baselines",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["paddle_resnet", "paddle_resnet.*"]),
    # The oneDNN operators' C++ sources, compiled on first use (paddle_resnet/speed/).
    package_data={"paddle_resnet.speed": ["onednn/*.cc", "onednn/*.h"]},
    python_requires=">=3.9",
    # Paddle itself comes per platform (see README): `[cpu]` installs the CPU build from
    # PyPI; GPU users install paddlepaddle-gpu from Paddle's own index first. The two
    # builds share the `paddle` module and cannot be installed together.
    install_requires=["numpy", "numba>=0.59", "pyyaml", "matplotlib", "pillow", "visualdl"],
    extras_require={
        # onednn-devel: oneDNN's headers for the CPU training operators; 2025.0.1 is
        # oneDNN 3.6.1, not newer than the 3.6.2 inside Paddle 3.3's wheel (newer headers
        # compile but fail at load). Without them training runs Paddle's convolution.
        "cpu": ["paddlepaddle>=3.0", "onednn-devel==2025.0.1"],
        "test": ["pytest", "hypothesis", "selenium"],
    },
    entry_points={
        "console_scripts": [
            "paddle-resnet-train=paddle_resnet.cli:train_main",
            "paddle-resnet-eval=paddle_resnet.cli:eval_main",
            "paddle-resnet-summary=paddle_resnet.cli:summary_main",
            "paddle-resnet-predict=paddle_resnet.cli:predict_main",
            "paddle-resnet-compare=paddle_resnet.cli:compare_main",
            "paddle-resnet-export=paddle_resnet.cli:export_main",
            "paddle-resnet-release=paddle_resnet.cli:release_main",
        ],
    },
)
