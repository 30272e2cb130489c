"""The v02 ``parts`` header: ``method,bsz,blktot,brem,bno`` (doc/protocol.md §3).

Pure arithmetic; reassembly state grows here later.
"""
from dataclasses import dataclass
from functools import lru_cache

from .errors import MessageError

METHODS = ("1", "i", "p")
MAX_BLOCKS = 1_000_000        # more is a bad message, not a file (a bitmap per block)
MAX_SIZE = 1 << 62            # bytes: any offset or size beyond is a bad message (os.pwrite)


@dataclass(frozen=True)
class Parts:
    method: str      # '1' whole file, 'i' inplace blocks, 'p' part files
    bsz: int         # block size (file size for method '1')
    blktot: int      # number of blocks
    brem: int        # remainder: file size % bsz (sr3 writes the block size here)
    bno: int         # 0-origin block number

    @classmethod
    def whole(cls, size: int) -> "Parts":
        return cls("1", size, 1, 0, 0)

    @classmethod
    def parse(cls, text: str) -> "Parts":
        """The header's value checked (MessageError naming ``parts``). A
        message's parts are read several times a file and most values
        repeat (``1,<size>,1,0,0``): the checked value is kept (immutable)."""
        return _parse(text)

    @classmethod
    def _parse(cls, text: str) -> "Parts":
        fields = text.split(",")
        if len(fields) != 5 or fields[0] not in METHODS:
            raise MessageError(f"'{text}' is not method,bsz,blktot,brem,bno "
                               f"with method one of {'/'.join(METHODS)}", "parts")
        try:
            bsz, blktot, brem, bno = (int(f) for f in fields[1:])
        except ValueError:
            raise MessageError(f"'{text}' has a non-integer field", "parts") from None
        if min(bsz, blktot, brem, bno) < 0 or bno >= max(blktot, 1):
            raise MessageError(f"'{text}' is out of range", "parts")
        if fields[0] != "1" and (bsz == 0 or blktot == 0):
            raise MessageError(f"'{text}': a block message needs bsz and blktot", "parts")
        if blktot > MAX_BLOCKS:
            raise MessageError(f"'{text}': more than {MAX_BLOCKS} blocks", "parts")
        if max(bsz, brem, bsz * max(blktot, 1)) > MAX_SIZE:
            raise MessageError(f"'{text}': sizes beyond {MAX_SIZE} bytes", "parts")
        return cls(fields[0], bsz, blktot, brem, bno)

    def __str__(self) -> str:
        return f"{self.method},{self.bsz},{self.blktot},{self.brem},{self.bno}"

    @property
    def is_whole(self) -> bool:
        return self.method == "1" or self.blktot == 1

    @property
    def file_size(self) -> int:
        """Size of the whole file (DD2015 formula, doc/protocol.md §3.2).

        sr3 puts the block's own size in ``brem`` (so brem == bsz); that is
        read as 'no remainder', which is exact for every block but the last.
        """
        if self.method == "1":
            return self.bsz
        if 0 < self.brem < self.bsz:
            return self.blktot * self.bsz - self.bsz + self.brem
        return self.blktot * self.bsz

    @property
    def offset(self) -> int:
        return 0 if self.method == "1" else self.bno * self.bsz

    @property
    def length(self) -> int:
        """Bytes covered by this block."""
        if self.method == "1":
            return self.bsz
        if self.bno == self.blktot - 1 and 0 < self.brem < self.bsz:
            return self.brem
        return self.bsz


TFACTOR = 50 << 20    # the automatic block size's unit (doc/protocol.md §3.3)


_parse = lru_cache(maxsize=4096)(Parts._parse)


def block_size(size: int, setting: int) -> int:
    """The block size for a file of ``size`` bytes: ``setting`` 1 never
    partitions, 0 chooses by size (doc/protocol.md §3.3), N > 1 is N."""
    if setting == 1:
        return size
    if setting > 1:
        return setting
    if size > 100 * TFACTOR:
        return 10 * TFACTOR
    if size > 10 * TFACTOR:
        return (size + 9) // 10
    if size > TFACTOR:
        return (size + 2) // 3
    return size


def split(size: int, bsz: int, method: str = "i") -> list[Parts]:
    """The parts a poster announces for a file of ``size`` bytes in blocks of ``bsz``."""
    if bsz <= 0 or bsz >= size:
        return [Parts.whole(size)]
    blktot, brem = divmod(size, bsz)
    if brem:
        blktot += 1
    return [Parts(method, bsz, blktot, brem, bno) for bno in range(blktot)]


def part_suffix(p: Parts, sum_letter: str) -> str:
    """The ``.Part`` file suffix of doc/protocol.md §3.4."""
    return f".{p.bsz}.{p.blktot}.{p.brem}.{p.bno}.{sum_letter}.Part"
