"""An image's file tree from its layers' tar headers, and /bin/sh looked up in it as the kernel would.

Layers are built in memory with tarfile (gzip, as registries store them) and applied lowest first,
as containerd unpacks them: OCI whiteouts, opaque directories, links. The images are hostile (a
VO manager builds them): names, links and counts must give a defined answer or an ImageError.
"""

import bz2
import gzip
import io
import tarfile
import time

import pytest

from arc_bridge.imagefs import (
    ELOOP,
    ENOENT,
    ENOTDIR,
    Dir,
    File,
    FileTree,
    ImageError,
    Other,
    Symlink,
    open_layer,
)

from .layers import entry, layer


def d(name, mode=0o755):
    return entry(name, tarfile.DIRTYPE, mode)


def f(name, mode=0o644):
    return entry(name, mode=mode)


def sym(name, target):
    return entry(name, tarfile.SYMTYPE, 0o777, target)


def hard(name, target):
    return entry(name, tarfile.LNKTYPE, 0o644, target)


def whiteout(path):
    parent, _, base = path.rpartition("/")
    return f(f"{parent}/.wh.{base}" if parent else f".wh.{base}")


def opaque(directory):
    return f(f"{directory}/.wh..wh..opq")


def image(*layers, **limits):
    tree = FileTree(**limits)
    for blob in layers:
        tree.apply(open_layer(io.BytesIO(blob)) if isinstance(blob, bytes) else blob)
    return tree


# Debian 12 as its image ships it: merged /usr, /bin/sh is dash through two symlinks.
DEBIAN = layer(d("./"), sym("./bin", "usr/bin"), sym("./lib", "usr/lib"), sym("./sbin", "usr/sbin"), d("./usr"),
               d("./usr/bin"), f("./usr/bin/dash", 0o755), sym("./usr/bin/sh", "dash"), f("./usr/bin/bash", 0o755),
               f("./usr/bin/env", 0o755), d("./usr/lib"), d("./etc"), f("./etc/passwd"))


def test_debian_with_merged_usr_has_its_shell_through_two_symlinks():
    found = image(DEBIAN).lookup("/bin/sh")
    assert found.path == "/usr/bin/dash" and found.error is None
    assert found.executable
    assert image(DEBIAN).is_executable("/bin/bash")


def test_names_with_and_without_leading_dot_slash_or_slash_are_the_same_path():
    for prefix in ("", "./", "/", ".//./"):
        tree = image(layer(d(f"{prefix}usr"), d(f"{prefix}usr/bin"), f(f"{prefix}usr/bin/dash", 0o755),
                           sym(f"{prefix}bin", "usr/bin"), sym(f"{prefix}usr/bin/sh", "dash")))
        assert tree.lookup("/bin/sh").path == "/usr/bin/dash", prefix
        assert tree.is_executable("/bin/sh")


def test_a_later_layer_whiting_out_dash_takes_the_shell_away():
    tree = image(DEBIAN, layer(whiteout("./usr/bin/dash")))
    found = tree.lookup("/bin/sh")
    assert (found.path, found.node, found.error) == ("/usr/bin/dash", None, ENOENT)
    assert not tree.is_executable("/bin/sh")
    assert tree.is_executable("/usr/bin/bash")  # only dash went


def test_a_whiteout_is_undone_by_a_later_layer_adding_the_file_again():
    assert image(DEBIAN, layer(whiteout("usr/bin/dash")), layer(f("usr/bin/dash", 0o755))).is_executable("/bin/sh")


def test_a_whiteout_of_a_directory_removes_everything_below_it():
    tree = image(DEBIAN, layer(whiteout("usr")))
    assert tree.lookup("/bin/sh").error == ENOENT
    assert tree.lookup("/usr").error == ENOENT
    assert tree.nodes == 5  # bin, lib and sbin (dangling now), etc, etc/passwd


def test_a_whiteout_through_a_symlinked_parent_removes_the_target():
    assert not image(DEBIAN, layer(whiteout("bin/dash"))).is_executable("/bin/sh")


def test_an_opaque_directory_hides_what_lower_layers_had_in_it():
    tree = image(DEBIAN, layer(d("usr/bin"), opaque("usr/bin"), f("usr/bin/python3", 0o755)))
    assert tree.lookup("/bin/sh").error == ENOENT
    assert not tree.is_executable("/usr/bin/bash")
    assert tree.is_executable("/usr/bin/python3")
    assert isinstance(tree.lookup("/usr/lib").node, Dir)  # beside it, untouched


def test_an_opaque_directory_keeps_its_own_layers_entries_listed_before_the_marker():
    # Go's tar writer sorts names: "-x" comes before ".wh..wh..opq".
    tree = image(DEBIAN, layer(d("usr/bin/-x"), f("usr/bin/-x/tool", 0o755), f("usr/bin/-sh", 0o755),
                               opaque("usr/bin"), sym("usr/bin/sh", "-sh")))
    assert tree.lookup("/bin/sh").path == "/usr/bin/-sh" and tree.is_executable("/bin/sh")
    assert tree.is_executable("/usr/bin/-x/tool")
    assert tree.lookup("/usr/bin/dash").error == ENOENT


def test_an_opaque_directory_hides_lower_content_of_subdirectories_this_layer_writes_into():
    lower = layer(d("opt"), d("opt/sw"), f("opt/sw/old", 0o755))
    tree = image(lower, layer(f("opt/sw/new", 0o755), opaque("opt")))
    assert tree.is_executable("/opt/sw/new")
    assert tree.lookup("/opt/sw/old").error == ENOENT


def test_a_directory_over_a_directory_keeps_its_content_and_a_file_over_one_replaces_it():
    assert image(DEBIAN, layer(d("usr/bin", 0o700))).is_executable("/bin/sh")
    assert image(DEBIAN, layer(d("usr/bin", 0o700))).lookup("/usr/bin").node.mode == 0o700
    tree = image(DEBIAN, layer(f("usr/bin", 0o755)))
    assert tree.lookup("/bin/sh").error == ENOTDIR
    assert tree.lookup("/bin/sh").path == "/usr/bin"


def test_a_directory_entry_replaces_a_symlink_of_the_same_name():
    tree = image(DEBIAN, layer(d("bin"), f("bin/sh", 0o755)))
    assert isinstance(tree.lookup("/bin").node, Dir) and tree.lookup("/bin/sh").path == "/bin/sh"
    assert tree.is_executable("/usr/bin/sh")


def test_symlinks_relative_to_their_directory_absolute_from_the_root_and_dotdot_stopping_at_root():
    base = layer(d("usr"), d("usr/bin"), f("usr/bin/dash", 0o755), d("bin"))
    for target in ("../usr/bin/dash", "/usr/bin/dash", "../../../../usr/bin/dash", "/../../usr/./bin//dash",
                   "/bin/../usr/bin/dash"):
        found = image(base, layer(sym("bin/sh", target))).lookup("/bin/sh")
        assert found.path == "/usr/bin/dash" and found.executable, target


def test_dotdot_after_a_symlinked_directory_goes_up_from_its_target_as_the_kernel_does():
    tree = image(layer(d("usr"), d("usr/bin"), d("usr/lib"), f("usr/lib/x", 0o755), sym("bin", "usr/bin")))
    assert tree.lookup("/bin/../lib/x").path == "/usr/lib/x"
    # and through a directory that is not there the kernel does not go, whatever follows
    assert tree.lookup("/nothing/../usr/lib/x").error == ENOENT


def test_symlinks_in_every_component_are_followed():
    tree = image(layer(sym("bin", "usr/bin"), d("usr"), sym("usr/bin", "/opt/tools/../tools/bin"), d("opt"),
                       d("opt/tools"), d("opt/tools/bin"), sym("opt/tools/bin/sh", "busybox"),
                       f("opt/tools/bin/busybox", 0o755)))
    assert tree.lookup("/bin/sh").path == "/opt/tools/bin/busybox"
    assert tree.is_executable("/bin/sh")


def test_a_shell_without_an_execute_bit_a_directory_or_a_fifo_is_no_shell():
    assert not image(layer(d("bin"), f("bin/sh", 0o644))).is_executable("/bin/sh")
    assert image(layer(d("bin"), f("bin/sh", 0o001))).is_executable("/bin/sh")  # anyone's execute bit
    assert isinstance(image(layer(d("bin/sh"))).lookup("/bin/sh").node, Dir)
    assert not image(layer(d("bin/sh"))).is_executable("/bin/sh")
    fifo = image(layer(d("bin"), entry("bin/sh", tarfile.FIFOTYPE)))
    assert isinstance(fifo.lookup("/bin/sh").node, Other) and not fifo.is_executable("/bin/sh")


def test_a_file_where_a_directory_is_needed_is_not_a_directory():
    tree = image(layer(f("bin", 0o755)))
    assert tree.lookup("/bin/sh").error == ENOTDIR
    assert image(DEBIAN).lookup("/bin/sh/").error == ENOTDIR


def test_a_trailing_slash_asks_for_a_directory():
    tree = image(DEBIAN)
    assert isinstance(tree.lookup("/bin/").node, Dir)
    assert tree.lookup("/bin/sh/").error == ENOTDIR
    assert tree.lookup("/").node is tree.root


def test_symlink_loops_end_in_eloop_and_forty_links_are_allowed():
    tree = image(layer(d("bin"), sym("bin/sh", "sh2"), sym("bin/sh2", "sh"), sym("loop", "loop"),
                       sym("up", "."), sym("dir", "dir/x")))
    assert tree.lookup("/bin/sh").error == ELOOP
    assert tree.lookup("/loop").error == ELOOP
    assert tree.lookup("/dir/y").error == ELOOP
    assert tree.lookup("/up/up/up/bin").node is tree.lookup("/bin").node
    chain = [sym(f"l{i}", f"l{i + 1}") for i in range(40)] + [f("l40", 0o755)]
    tree = image(layer(*chain, sym("l-1", "l0")))
    assert tree.is_executable("/l0")  # 40 links
    assert tree.lookup("/l-1").error == ELOOP  # 41


def test_an_empty_or_dangling_symlink_leads_nowhere():
    tree = image(layer(d("bin"), sym("bin/sh", "/nowhere/sh")))
    assert (tree.lookup("/bin/sh").path, tree.lookup("/bin/sh").error) == ("/nowhere", ENOENT)
    tree = image([sym("bin", "")])  # tarfile writes no empty link target: headers as an iterable
    assert tree.lookup("/bin").error == ENOENT  # symlink(2) refuses an empty target: not created


def test_hostile_names_stay_inside_the_image():
    tree = image(layer(f("../../../../bin/sh", 0o755), f("/etc/passwd"), f("a/../../x", 0o755)))
    assert tree.lookup("/bin/sh").path == "/bin/sh" and tree.is_executable("/bin/sh")
    assert tree.lookup("/etc/passwd").node is not None
    assert tree.is_executable("/x")
    assert set(tree.root.children) == {"bin", "etc", "x"}  # a/../../x is x: cleaned before anything


def test_an_entry_through_a_symlink_pointing_out_of_the_image_lands_inside_it():
    # containerd resolves an entry's parents inside the root: ../../.. is the root itself.
    tree = image(layer(sym("escape", "../../../../.."), f("escape/bin/sh", 0o755), sym("abs", "/"),
                       f("abs/usr/sh", 0o755)))
    assert tree.lookup("/bin/sh").path == "/bin/sh" and tree.is_executable("/bin/sh")
    assert tree.is_executable("/usr/sh")


def test_entries_under_a_dangling_symlink_create_its_target():
    tree = image(layer(sym("bin", "usr/bin"), f("bin/sh", 0o755)))
    assert tree.lookup("/bin/sh").path == "/usr/bin/sh" and tree.is_executable("/bin/sh")


def test_entries_below_a_file_or_a_symlink_loop_are_not_created():
    tree = image(layer(f("bin"), f("bin/sh", 0o755), sym("loop", "loop"), f("loop/sh", 0o755)))
    assert tree.lookup("/bin/sh").error == ENOTDIR and tree.lookup("/loop/sh").error == ELOOP
    assert tree.nodes == 2


def test_names_the_kernel_refuses_are_not_created():
    tree = image([f("bin/" + "s" * 256, 0o755), f("bin/sh\0x", 0o755), f("x/" * 2048 + "sh", 0o755),
                  sym("bin/long", "/" * 4096)])
    assert tree.lookup("/bin").error == ENOENT and tree.nodes == 0


def test_a_hardlink_is_a_copy_of_its_target_in_the_tree():
    tree = image(layer(d("usr"), d("usr/bin"), f("usr/bin/dash", 0o755), sym("bin", "usr/bin"),
                       hard("usr/bin/sh", "./usr/bin/dash"), hard("usr/bin/sh2", "bin/dash")))
    assert tree.lookup("/bin/sh").path == "/usr/bin/sh" and tree.is_executable("/bin/sh")
    assert tree.is_executable("/usr/bin/sh2")  # the link's target path, through a symlinked directory


def test_a_hardlink_to_a_lower_layers_file_survives_its_whiteout():
    tree = image(DEBIAN, layer(hard("usr/bin/sh", "usr/bin/dash")), layer(whiteout("usr/bin/dash")))
    assert tree.lookup("/bin/sh").path == "/usr/bin/sh" and tree.is_executable("/bin/sh")


def test_a_hardlink_to_a_symlink_links_the_symlink_itself():
    tree = image(DEBIAN, layer(d("opt"), hard("opt/sh", "usr/bin/sh")))
    assert isinstance(tree.lookup("/usr/bin/sh").node, File)
    assert tree.lookup("/opt/sh").path == "/opt/dash"  # a relative target, now from /opt
    assert tree.lookup("/opt/sh").error == ENOENT


def test_a_hardlink_to_nothing_or_to_a_directory_is_not_created():
    tree = image(layer(d("usr"), hard("bin-sh", "usr/bin/dash"), hard("usr-link", "usr"), hard("up", "../../..")))
    assert tree.lookup("/bin-sh").error == ENOENT
    assert tree.lookup("/usr-link").error == ENOENT and tree.lookup("/up").error == ENOENT


def test_headers_only_are_kept_whatever_the_files_hold():
    tree = image(DEBIAN)
    assert tree.lookup("/usr/bin/dash").node == File(0o755, 1)
    assert tree.lookup("/bin").node is not None and isinstance(tree.root.children["bin"], Symlink)


def test_a_layer_as_an_iterable_of_headers_or_an_uncompressed_tar():
    tree = FileTree()
    tree.apply([d("usr"), d("usr/bin"), f("usr/bin/dash", 0o755)])
    tree.apply(open_layer(io.BytesIO(layer(sym("bin", "usr/bin"), sym("usr/bin/sh", "dash"), compression=""))))
    assert tree.is_executable("/bin/sh") and tree.layers == 2


def test_gnu_tar_format_long_names_are_read():
    name = "opt/" + "/".join(["d" * 100] * 5) + "/sh"
    tree = image(layer(f(name, 0o755), format=tarfile.GNU_FORMAT))
    assert tree.is_executable("/" + name)


def test_a_streamed_layer_does_not_keep_its_members():
    tar = open_layer(io.BytesIO(layer(*(f(f"f{i}") for i in range(100)))))
    FileTree().apply(tar)
    assert tar.members == []


def test_more_files_than_the_limit_is_an_error_not_memory_used():
    with pytest.raises(ImageError, match="more than 100 files"):
        image(layer(*(f(f"f{i}") for i in range(101))), max_nodes=100)
    image(layer(*(f(f"f{i}") for i in range(100))), max_nodes=100)


def test_whiteouts_free_room_under_the_limit():
    tree = image(layer(*(f(f"d/f{i}") for i in range(99))), layer(whiteout("d")), layer(*(f(f"e{i}") for i in range(99))),
                 max_nodes=100)
    assert tree.nodes == 99


def test_symlink_bombs_are_bounded_by_the_step_budget():
    # Each entry's parent walks 40 links of long targets.
    links = [sym(f"l{i}", "/".join(["."] * 1000) + f"/l{i + 1}") for i in range(40)]
    entries = [f(f"l0/f{i}") for i in range(200)]
    with pytest.raises(ImageError, match="steps"):
        image(layer(d("l40"), *links, *entries), max_steps=1_000_000)


def test_many_opaque_markers_and_whiteouts_cost_little():
    many = [f(f"big/f{i}") for i in range(10000)]
    markers = [opaque("big") for _ in range(10000)] + [whiteout(f"big/f{i}") for i in range(10000)]
    tree = FileTree()
    tree.apply(many)
    began = time.process_time()
    tree.apply(many + markers)
    assert time.process_time() - began < 1  # each directory swept once per layer, not once per marker
    assert tree.lookup("/big").node.children == {} and tree.nodes == 1


def test_an_oversized_metadata_header_is_refused_before_it_is_read():
    huge = layer(f("x" * (2 << 20)))  # a 2 MiB name: a pax header of that size
    with pytest.raises(ImageError, match="metadata header"):
        image(huge)
    gnu = layer(f("y" * (2 << 20)), format=tarfile.GNU_FORMAT)
    with pytest.raises(ImageError, match="metadata header"):
        image(gnu)


def unterminated(name, content, size=None):
    """A gzip layer of one file (of `size`, default the content's) that ends with the content: no
    padding, no end-of-archive blocks."""
    info = entry(name)
    info.size = len(content) if size is None else size
    return gzip.compress(info.tobuf(tarfile.PAX_FORMAT) + content)


def test_a_layer_ending_right_after_its_last_content_is_read_as_containerd_reads_it():
    """umoci writes such layers, and containerd (Go's archive/tar) takes the missing padding and
    end-of-archive blocks as the end."""
    assert image(DEBIAN, unterminated("etc/ark-image", b"base:1\n")).lookup("/etc/ark-image").node is not None


def test_a_layer_ending_inside_a_files_content_is_an_image_error():
    with pytest.raises(ImageError, match="layer 2 of the image is not a readable tar archive: unexpected end of data"):
        image(DEBIAN, unterminated("etc/ark-image", b"bas", size=7))


def test_not_a_tar_is_an_image_error():
    for blob in (b"", b"not a tar at all" * 100, layer(f("x"))[:40], bz2.compress(layer(f("x"), compression=""))):
        with pytest.raises(ImageError):
            image(blob)


def test_a_zstd_layer_needs_a_python_that_reads_zstd():
    from arc_bridge import imagefs
    if imagefs.ZSTD:
        pytest.skip("this Python reads zstd")
    with pytest.raises(ImageError, match="zstd"):
        open_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 100))


def test_lookups_reaching_a_mount_cannot_be_decided_by_the_image():
    tree = image(DEBIAN, layer(d("cvmfs"), sym("usr/bin/sh", "/cvmfs/sw/bin/bash")))
    found = tree.lookup("/bin/sh", mounts=["/cvmfs"])
    assert found.mount == "/cvmfs" and found.node is None and found.error is None
    assert tree.lookup("/bin/sh").error == ENOENT
    # The mount point's parents the runtime creates when the image lacks them.
    assert image(DEBIAN, layer(sym("usr/bin/sh", "/opt/sw/bin/sh"))).lookup("/bin/sh", ["/opt/sw"]).mount == "/opt"
    assert image(DEBIAN).lookup("/bin/sh", mounts=["/cvmfs"]).executable


def test_a_copy_goes_on_with_later_layers_and_leaves_the_original_as_it_was():
    base = image(DEBIAN)
    top = base.copy()
    top.apply(open_layer(io.BytesIO(layer(whiteout("./usr/bin/dash"), opaque("./etc")))))
    assert not top.lookup("/bin/sh").executable and top.lookup("/etc/passwd").error is not None
    assert base.lookup("/bin/sh").executable and base.lookup("/etc/passwd").error is None
    assert (top.layers, base.layers) == (2, 1) and top.nodes <= base.nodes


def test_a_tree_as_deep_as_a_path_can_be_is_copied():
    depth = 2000  # "a/" 2000 times is just under PATH_MAX
    deep = image([d("./" + "a/" * i) for i in range(1, depth + 1)])
    copied = deep.copy()
    assert copied.lookup("/" + "a/" * depth).error is None and copied.nodes == deep.nodes
