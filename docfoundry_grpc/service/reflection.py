"""Server reflection, v1 and v1alpha, over descriptors that keep the .proto's comments.

The generated `search_pb2` module embeds its descriptor without source info, so reflection
over the default pool would show tools like grpcurl no documentation. `search.binpb` is the
same .proto compiled with `--include_source_info` (see scripts/gen_protos.sh; a test checks
it is current). Reflection finds files in a pool built from it, and answers with the files'
bytes as compiled: protobuf's upb runtime drops source info from what a pool hands back.

grpcio-reflection implements only v1alpha. The v1 service's messages are v1alpha's under
another package name, field for field, so the same servicer answers both: the v1 method is
registered with the v1alpha message classes, which read and write the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
DESCRIPTOR_SET = "search.binpb"


class DocumentedReflectionServicer(ReflectionServicer):  # type: ignore[misc]
    """Reflection whose file answers carry the compiled bytes, comments included, of every
    file it has them for."""

    def __init__(self, service_names: Iterable[str], extra: Iterable[FileDescriptor]) -> None:
        files = descriptor_pb2.FileDescriptorSet.FromString(
            resources.files("docfoundry.v1").joinpath(DESCRIPTOR_SET).read_bytes()
        )
        self._documented = {proto.name: _as_served(proto) for proto in files.file}
        super().__init__(service_names, pool=_pool(files, extra))

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        return self._documented_files(super()._file_by_filename(request, filename))

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        return self._documented_files(
            super()._file_containing_symbol(request, fully_qualified_name)
        )

    def _documented_files(
        self, response: reflection_pb2.ServerReflectionResponse
    ) -> reflection_pb2.ServerReflectionResponse:
        if not response.HasField("file_descriptor_response"):
            return response
        files = response.file_descriptor_response.file_descriptor_proto
        for i, raw in enumerate(files):
            name = descriptor_pb2.FileDescriptorProto.FromString(raw).name
            files[i] = self._documented.get(name, raw)
        return response


def _as_served(proto: descriptor_pb2.FileDescriptorProto) -> bytes:
    """The file as the server's own descriptors describe it, comments kept: protoc writes
    each field's JSON name into a descriptor set but not into generated code, and a client
    such as grpcurl prints JSON with the names the server describes, so they must agree."""
    served = descriptor_pb2.FileDescriptorProto()
    served.CopyFrom(proto)
    messages = list(served.message_type)
    while messages:
        message = messages.pop()
        for field in message.field:
            field.ClearField("json_name")
        messages.extend(message.nested_type)
    return served.SerializeToString()


def _pool(
    files: descriptor_pb2.FileDescriptorSet, extra: Iterable[FileDescriptor]
) -> descriptor_pool.DescriptorPool:
    """The API's files plus `extra` files (health, reflection) and their dependencies."""
    pool = descriptor_pool.DescriptorPool()
    added = set()
    for proto in files.file:
        pool.Add(proto)
        added.add(proto.name)
    for file in extra:
        _add_with_dependencies(pool, file, added)
    return pool


def _add_with_dependencies(
    pool: descriptor_pool.DescriptorPool, file: FileDescriptor, added: set[str]
) -> None:
    if file.name in added:
        return
    for dependency in file.dependencies:
        _add_with_dependencies(pool, dependency, added)
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    pool.Add(proto)
    added.add(file.name)


def enable_reflection(
    server: grpc.aio.Server, service_names: Iterable[str], extra: Iterable[FileDescriptor]
) -> None:
    """Serves reflection v1 and v1alpha for `service_names` (the reflection services are
    added to the list)."""
    names = (*service_names, reflection.SERVICE_NAME, V1_SERVICE_NAME)
    servicer = DocumentedReflectionServicer(names, extra)
    for service in (reflection.SERVICE_NAME, V1_SERVICE_NAME):
        handler = grpc.method_handlers_generic_handler(
            service,
            {
                "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                    servicer.ServerReflectionInfo,
                    request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                    response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
