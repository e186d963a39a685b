# SPDX-License-Identifier: MIT
# Conan 2 recipe for ternq, a header-only library (conan-center conventions).
# Unverified: Conan is not installable on the project's development machines.
import os

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class TernqConan(ConanFile):
    name = "ternq"
    version = "0.1.0"
    description = "Header-only post-training ternary quantization of LLM weight matrices"
    license = "MIT"
    url = "https://github.com/conan-io/conan-center-index"
    homepage = "https://github.com/ternq/ternq"
    topics = ("quantization", "llm", "ternary", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"with_xtensor": [True, False]}
    default_options = {"with_xtensor": False}
    no_copy_source = True

    def export_sources(self):
        # The recipe lives in conan/; the headers one level up.
        copy(self, "include/*", os.path.join(self.recipe_folder, ".."), self.export_sources_folder)
        copy(self, "LICENSE*", os.path.join(self.recipe_folder, ".."), self.export_sources_folder)

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        self.requires("eigen/3.4.0")
        if self.options.with_xtensor:
            self.requires("xtensor/0.24.7")

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def package(self):
        copy(self, "LICENSE*", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.set_property("cmake_file_name", "ternq")
        self.cpp_info.set_property("cmake_target_name", "ternq::ternq")

        self.cpp_info.components["core"].set_property("cmake_target_name", "ternq::ternq")
        self.cpp_info.components["core"].requires = ["eigen::eigen"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.components["core"].system_libs = ["pthread"]

        self.cpp_info.components["eigen_adapter"].set_property("cmake_target_name", "ternq::eigen")
        self.cpp_info.components["eigen_adapter"].requires = ["core", "eigen::eigen"]

        if self.options.with_xtensor:
            self.cpp_info.components["xtensor_adapter"].set_property("cmake_target_name", "ternq::xtensor")
            self.cpp_info.components["xtensor_adapter"].requires = ["core", "xtensor::xtensor"]
