"""What a recording can train: ``python -m training.inspect_bag BAG [BAG ...]``.

Lists each bag's topics with their type, message count, rate (from header stamps) and, for
images, the encoding and size of the first message; then, per method, the sets of topics
that fit its roles (training/datasets/rosbag.py ROLES) with the exact training command.
Works on any rosbag2 (sqlite3, MCAP) or ROS 1 bag that rosbags reads.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from depth_nodes.core.encodings import ImageFormatError, lookup_encoding
from training.datasets.rosbag import (CAMERA_INFO, COMPRESSED, IMAGE_TYPES, ROLES,
                                      BagDataError, TopicIndex, camera_from_info,
                                      decode_image_message, nearest, open_reader, scan_bag)


@dataclass(frozen=True)
class TopicFacts:
    topic: str
    msgtype: str
    count: int
    rate_hz: float
    kind: str            # 'color', 'mono', 'depth', 'camera_info', 'other'
    detail: str          # encoding and size, or the right camera's baseline
    baseline: float = 0.0


def describe_topics(bag: Path) -> tuple[list[TopicFacts], dict[str, TopicIndex], str]:
    """Facts of every topic of ``bag``, the stamp index of its image / camera_info topics and
    a one-line summary of the bag."""
    reader = open_reader(bag)
    try:
        connections = list(reader.connections)
        summary = (f'{bag}: {"rosbag2" if reader.is2 else "ROS 1"}, '
                   f'{reader.duration / 1e9:.1f} s, {reader.message_count} messages')
        first = {}
        wanted = [c for c in connections if c.msgtype in IMAGE_TYPES + (CAMERA_INFO,)]
        for conn in wanted:
            for _, _, raw in reader.messages(connections=[conn]):
                first[conn.topic] = reader.deserialize(raw, conn.msgtype)
                break
    finally:
        reader.close()
    index = scan_bag(bag, [c.topic for c in wanted]) if wanted else {}
    facts = []
    for conn in sorted(connections, key=lambda c: c.topic):
        stamps = index[conn.topic].stamps if conn.topic in index else ()
        rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9) \
            if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
        kind, detail, baseline = 'other', '', 0.0
        message = first.get(conn.topic)
        if message is not None and conn.msgtype == CAMERA_INFO:
            camera = camera_from_info(message)
            kind, baseline = 'camera_info', camera.baseline
            detail = f'{camera.width}x{camera.height}' + \
                (f', baseline {baseline:.4g} m (right camera)' if baseline else '')
        elif message is not None:
            try:
                image, encoding = decode_image_message(message, conn.msgtype)
                kind = lookup_encoding(encoding).kind
                detail = f'{encoding} {image.shape[1]}x{image.shape[0]}' + \
                    (f' ({message.format})' if conn.msgtype == COMPRESSED else '')
            except (ImageFormatError, ValueError) as exc:
                detail = f'not decodable: {exc}'
        facts.append(TopicFacts(conn.topic, conn.msgtype, len(stamps) or conn.msgcount,
                                rate, kind, detail, baseline))
    return facts, index, summary


def _namespace(topic: str) -> PurePosixPath:
    return PurePosixPath(topic).parent


def camera_info_of(topic: str, infos: Sequence[str]) -> str | None:
    """The camera_info beside an image topic: same namespace, else the nearest parent's."""
    ns = _namespace(topic)
    for candidate_ns in (ns, *ns.parents):
        same = [i for i in infos if _namespace(i) == candidate_ns]
        if same:
            return sorted(same)[0]
    return None


def matched_fraction(a: TopicIndex, b: TopicIndex, tolerance_ns: int) -> float:
    """The fraction of a's messages with a message of b within the tolerance."""
    if not a.stamps or not b.stamps:
        return 0.0
    hits = sum(abs(b.stamps[nearest(b.stamps, s)] - s) <= tolerance_ns for s in a.stamps)
    return hits / len(a.stamps)


def candidate_topic_sets(facts: Sequence[TopicFacts], index: dict[str, TopicIndex],
                         tolerance_s: float = 0.02) -> dict[str, list[dict[str, str]]]:
    """Per method, the role -> topic sets this bag offers, best first (most stamps paired,
    colour before mono)."""
    tol = int(round(tolerance_s * 1e9))
    color = [f.topic for f in facts if f.kind == 'color']
    mono = [f.topic for f in facts if f.kind == 'mono']
    depth = [f.topic for f in facts if f.kind == 'depth']
    infos = [f.topic for f in facts if f.kind == 'camera_info']
    baselines = {f.topic: f.baseline for f in facts if f.kind == 'camera_info'}
    images = color + mono
    out: dict[str, list[dict[str, str]]] = {m: [] for m in ROLES}
    rgbd = []
    for image in images:
        for d in depth:
            fraction = matched_fraction(index[image], index[d], tol)
            if fraction > 0:
                roles = {'image': image, 'depth': d}
                info, depth_info = camera_info_of(image, infos), camera_info_of(d, infos)
                if info:
                    roles['camera_info'] = info
                if depth_info and depth_info != info:
                    roles['depth_camera_info'] = depth_info
                rgbd.append((-fraction, image not in color, roles))
    rgbd = [roles for *_, roles in sorted(rgbd, key=lambda r: r[:2])]
    for method in ('eigen', 'pix2pix', 'semidense'):
        out[method] = rgbd
    for left in images:
        for right in images:
            left_info, right_info = camera_info_of(left, infos), camera_info_of(right, infos)
            if (left == right or not left_info or not right_info or left_info == right_info
                    or baselines[left_info] != 0 or baselines[right_info] <= 0
                    or matched_fraction(index[left], index[right], tol) == 0):
                continue
            out['monodepth'].append({'left': left, 'right': right,
                                     'left_camera_info': left_info,
                                     'right_camera_info': right_info})
    out['cyclegan'] = [{'image': i, 'depth': d} for i in images for d in depth]
    nir_like = sorted(mono, key=lambda t: not any(k in t.lower() for k in ('nir', 'ir')))
    out['nir_ctn'] = [{'nir': n, 'image': c} for n in nir_like for c in color]
    return out


def train_command(method: str, bags: Sequence[Path], roles: dict[str, str]) -> str:
    args = ['python', '-m', 'training.train', '--config',
            f'training/configs/{method}_bag.yaml']
    for bag in bags:
        args += ['--bag', str(bag)]
    for role, topic in roles.items():
        args += ['--topic', f'{role}:={topic}']
    return shlex.join(args)


def inspect(bags: Sequence[Path], out=sys.stdout) -> dict[str, list[dict[str, str]]]:
    """Print the report; returns the candidate sets per method: paired roles within one
    bag (the dataset pairs messages of one recording), unpaired roles over all bags."""
    all_facts: list[TopicFacts] = []
    all_index: dict[str, TopicIndex] = {}
    candidates: dict[str, list[dict[str, str]]] = {m: [] for m in ROLES}
    topics_of: dict[Path, set[str]] = {}
    for bag in bags:
        facts, index, summary = describe_topics(bag)
        print(summary, file=out)
        width = max([len(f.topic) for f in facts] + [5])
        print(f"  {'topic':<{width}}  {'type':<32} {'count':>6} {'rate Hz':>8}  detail",
              file=out)
        for f in facts:
            rate = f'{f.rate_hz:.2f}' if f.rate_hz else '-'
            print(f'  {f.topic:<{width}}  {f.msgtype:<32} {f.count:>6} {rate:>8}  {f.detail}',
                  file=out)
        topics_of[bag] = {f.topic for f in facts}
        for method, sets in candidate_topic_sets(facts, index).items():
            if ROLES[method].paired:
                candidates[method] += [r for r in sets if r not in candidates[method]]
        all_facts += [f for f in facts if f.topic not in all_index]
        for topic, topic_index in index.items():
            all_index.setdefault(topic, topic_index)
    for method, sets in candidate_topic_sets(all_facts, all_index).items():
        if not ROLES[method].paired:
            candidates[method] = sets
    print('\nWhat these topics can train (roles: training/datasets/rosbag.py):', file=out)
    for method, sets in candidates.items():
        if not sets:
            print(f'  {method}: no topics fit (needs {ROLES[method].needs()})', file=out)
            continue
        print(f'  {method}:', file=out)
        for roles in sets[:2]:
            used = [b for b in bags if topics_of[b] & set(roles.values())]
            print(f'    {train_command(method, used, roles)}', file=out)
        if len(sets) > 2:
            print(f'    ({len(sets) - 2} more topic sets fit)', file=out)
    return candidates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m training.inspect_bag',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('bags', nargs='+', type=Path, metavar='BAG',
                        help='rosbag2 directory (sqlite3 / MCAP) or ROS 1 .bag file')
    args = parser.parse_args(argv)
    try:
        inspect(args.bags)
    except BagDataError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
