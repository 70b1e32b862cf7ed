"""The built-in data sets: shapes, classes, normalisation, files and checksums.

Checksums: md5 values are the ones the data sets' authors publish (and torchvision uses); sha256
values are given where a trusted one is known (see /work/shared/datasets/README.md for how the
MNIST, Fashion-MNIST and USPS values were cross-checked). Means and standard deviations are per
channel, over the train split, on pixels in [0, 1].
"""

from __future__ import annotations

from datadistill.data.readers import (
    _read_cifar10,
    _read_digits,
    _read_mnist_like,
    _read_svhn,
    _read_usps,
)
from datadistill.data.registry import DatasetSpec, FileSpec, register_dataset

_DIGIT_NAMES = tuple(str(d) for d in range(10))


def _idx_files(base_url: str, digests: dict[str, tuple[str, str]]) -> tuple[FileSpec, ...]:
    """FileSpecs for the four MNIST-style files; `digests` maps file name -> (md5, sha256)."""
    return tuple(
        FileSpec(
            name=name,
            sha256=sha256,
            md5=md5,
            url=f"{base_url}/{name}",
            split="train" if name.startswith("train") else "test",
        )
        for name, (md5, sha256) in digests.items()
    )


register_dataset(
    DatasetSpec(
        name="mnist",
        image_shape=(1, 28, 28),
        num_classes=10,
        class_names=_DIGIT_NAMES,
        mean=(0.1307,),
        std=(0.3081,),
        files=_idx_files(
            "https://ossci-datasets.s3.amazonaws.com/mnist",
            {
                "train-images-idx3-ubyte.gz": (
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                ),
                "train-labels-idx1-ubyte.gz": (
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                ),
                "t10k-images-idx3-ubyte.gz": (
                    "9fb629c4189551a2d022fa330f9573f3",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                ),
                "t10k-labels-idx1-ubyte.gz": (
                    "ec29112dd5afa0611ce80d1b7f02629c",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                ),
            },
        ),
        homepage="http://yann.lecun.com/exdb/mnist/",
        reader=_read_mnist_like,
        subdir="mnist",
    )
)

register_dataset(
    DatasetSpec(
        name="fashion-mnist",
        image_shape=(1, 28, 28),
        num_classes=10,
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        mean=(0.2860,),
        std=(0.3530,),
        files=_idx_files(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
            {
                "train-images-idx3-ubyte.gz": (
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                ),
                "train-labels-idx1-ubyte.gz": (
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                ),
                "t10k-images-idx3-ubyte.gz": (
                    "bef4ecab320f06d8554ea6380940ec79",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                ),
                "t10k-labels-idx1-ubyte.gz": (
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                ),
            },
        ),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        reader=_read_mnist_like,
        subdir="fashion-mnist",
    )
)

_ESL_URL = "https://hastie.su.domains/ElemStatLearn/datasets"
_LIBSVM_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass"

register_dataset(
    DatasetSpec(
        name="usps",
        image_shape=(1, 16, 16),
        num_classes=10,
        class_names=_DIGIT_NAMES,
        # Computed once on the ESL train split (7,291 images) with pixels (v + 1) / 2:
        # mean 0.25448, std 0.38462 (numpy, float64, population std).
        mean=(0.2545,),
        std=(0.3846,),
        files=(
            FileSpec(
                name="zip.train.gz",
                sha256="66ebf231ab51f2cf6ac1a892d0f98ccffee1079d7a5db638c1f11f366046ca16",
                md5="206835541ea704bcfb4b6eea872678bf",
                url=f"{_ESL_URL}/zip.train.gz",
                split="train",
            ),
            FileSpec(
                name="zip.test.gz",
                sha256="8dacc3c6e136af6c3488de9e5113a7daf140c8c2f1f0b61c54ee02f03f1a962f",
                md5="f9350e940232b89f1dc8f8eacac88625",
                url=f"{_ESL_URL}/zip.test.gz",
                split="test",
            ),
        ),
        # The LIBSVM copy of the same split (torchvision's source), accepted when present.
        alternatives=(
            FileSpec(
                name="usps.bz2",
                sha256=None,
                md5="ec16c51db3855ca6c91edd34d0e9b197",
                url=f"{_LIBSVM_URL}/usps.bz2",
                split="train",
            ),
            FileSpec(
                name="usps.t.bz2",
                sha256=None,
                md5="8ea070ee2aca1ac39742fdd1ef5ed118",
                url=f"{_LIBSVM_URL}/usps.t.bz2",
                split="test",
            ),
        ),
        homepage="https://hastie.su.domains/ElemStatLearn/data.html",
        reader=_read_usps,
        subdir="usps",
    )
)

# md5 per batch as published with torchvision's CIFAR10; sha256 known only for test_batch.
_CIFAR_BATCHES = {
    "data_batch_1": ("c99cafc152244af753f735de768cd75f", None),
    "data_batch_2": ("d4bba439e000b95fd0a9bffe97cbabec", None),
    "data_batch_3": ("54ebc095f3ab1f0389bbae665268c751", None),
    "data_batch_4": ("634d18415352ddfa80567beed471001a", None),
    "data_batch_5": ("482c414d41f54cd18b22e5b47cb7c3cb", None),
    "test_batch": (
        "40351d587109b95175f43aff81a1287e",
        "f53d8d457504f7cff4ea9e021afcf0e0ad8e24a91f3fc42091b8adef61157831",
    ),
}

register_dataset(
    DatasetSpec(
        name="cifar10",
        image_shape=(3, 32, 32),
        num_classes=10,
        class_names=(
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        files=tuple(
            FileSpec(
                name=f"cifar-10-batches-py/{name}",
                sha256=sha256,
                md5=md5,
                url=None,  # not served one by one: they come from the archive below
                split="test" if name == "test_batch" else "train",
            )
            for name, (md5, sha256) in _CIFAR_BATCHES.items()
        ),
        archive=FileSpec(
            name="cifar-10-python.tar.gz",
            sha256=None,
            md5="c58f30108f718f92721af3b95e74349a",
            url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        ),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        reader=_read_cifar10,
        subdir="cifar10",
    )
)

_SVHN_URL = "http://ufldl.stanford.edu/housenumbers"

register_dataset(
    DatasetSpec(
        name="svhn",
        image_shape=(3, 32, 32),
        num_classes=10,
        class_names=_DIGIT_NAMES,
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
        files=(
            FileSpec(
                name="train_32x32.mat",
                sha256=None,
                md5="e26dedcc434d2e4c54c9b2d4a06d8373",
                url=f"{_SVHN_URL}/train_32x32.mat",
                split="train",
            ),
            FileSpec(
                name="test_32x32.mat",
                sha256=None,
                md5="eb5a983be6a315427106f1b164d9cef3",
                url=f"{_SVHN_URL}/test_32x32.mat",
                split="test",
            ),
        ),
        homepage="http://ufldl.stanford.edu/housenumbers/",
        reader=_read_svhn,
        subdir="svhn",
    )
)

register_dataset(
    DatasetSpec(
        name="digits",
        image_shape=(1, 8, 8),
        num_classes=10,
        class_names=_DIGIT_NAMES,
        # Computed once on the train split (first 1,437 images, values / 16):
        # mean 0.30539, std 0.37551 (numpy, float64, population std).
        mean=(0.3054,),
        std=(0.3755,),
        files=(),  # ships inside scikit-learn (sklearn.datasets.load_digits)
        homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        reader=_read_digits,
        subdir="digits",
    )
)
