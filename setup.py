"""ament_python package definition for depth_nodes.

Console scripts are installed into lib/depth_nodes (see setup.cfg) so that `ros2 run` and
launch_ros find them; launch files, configs and demo models go to share/depth_nodes.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'depth_nodes'
NODES = [
    'mono_depth_node',
    'dof_node',
    'nir_depth_node',
    'semidense_depth_node',
    'stereo_depth_node',
]

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*')),
        ('share/' + PACKAGE + '/models', glob('models/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='depth_nodes maintainers',
    maintainer_email='maintainers@depth-nodes.org',
    description='Dense metric depth from RGB, NIR, stereo and semi-dense camera streams.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            f'{name} = {PACKAGE}.nodes.{name}:main' for name in NODES
        ] + [
            'depth-nodes = depth_nodes.cli:main',
            'build_engine = depth_nodes.build_engine:main',
        ],
    },
)
