"""What pyproject.toml cannot say: the Jinja templates are edited in templates/ at the top of
the repository, and the wheel carries them inside the package, as `alerts/templates`, where an
installed product reads them (`alerts.mail.render.TEMPLATES`; a checkout reads templates/).

setuptools installs only package data reliably (`data_files` land in a prefix that nothing
can find again), so templates/ is the package `alerts.templates` by `package_dir`; its files
are listed in pyproject.toml's `[tool.setuptools.package-data]`. Everything else about the
project is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["alerts*", "subscriptions*"]),
              "alerts.templates"],
    package_dir={"alerts.templates": "templates"},
)
