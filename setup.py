from setuptools import find_packages, setup

from sarra import __version__

TOOLS = ["post", "watch", "subscribe", "sara", "sender", "shovel", "winnow", "log", "audit"]

setup(
    name="sarra",
    version=__version__,
    description="File-tree replication and notification switch (v02 AMQP posts and logs)",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="GPL-2.0-or-later",
    python_requires=">=3.10",
    packages=find_packages(include=["sarra", "sarra.*"]),
    install_requires=[
        "pika>=1.3,<2",
        "requests>=2.28,<3",
        "xxhash>=3.0,<5",
        "watchdog>=3.0,<8",
        "PyYAML>=6.0,<7",
        "psutil>=5.9,<8",
    ],
    extras_require={"test": ["pytest>=7", "hypothesis>=6", "pytest-timeout>=2"]},
    entry_points={"console_scripts": [f"dd_{t}=sarra.cli:main_{t}" for t in TOOLS]
                  + ["dd=sarra.cli:main_dd"]},
)
