//! What the upstream serves, from its reflection: the files that define its
//! services, as one encoded `FileDescriptorSet`, so that the metrics can
//! name its methods. v1 first, then v1alpha (grpcio's Python reflection
//! serves only that one).

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

use super::Forward;

/// Services whose methods the server names already.
const OWN: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

pub(super) async fn describe(forward: &Forward) -> Result<Vec<u8>, String> {
    let channel = forward
        .channel()
        .ok_or("an HTTP/1.1 upstream has no gRPC reflection")?
        .map_err(|e| e.to_string())?;
    let files = match v1::files(channel.clone()).await {
        Ok(files) => files,
        Err(v1) => v1alpha::files(channel)
            .await
            .map_err(|v1alpha| format!("reflection v1: {v1}; v1alpha: {v1alpha}"))?,
    };
    let mut set = FileDescriptorSet::default();
    for encoded in files {
        let file = FileDescriptorProto::decode(&*encoded)
            .map_err(|e| format!("a file descriptor does not decode: {e}"))?;
        if !set.file.iter().any(|f| f.name == file.name) {
            set.file.push(file);
        }
    }
    Ok(set.encode_to_vec())
}

/// The same client code for both versions of reflection, whose generated
/// types have the same shape under different paths.
macro_rules! reflection_client {
    ($version:ident) => {
        mod $version {
            use tonic::transport::Channel;
            use tonic_reflection::pb::$version::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse,
            };

            fn ask(request: MessageRequest) -> ServerReflectionRequest {
                ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(request),
                }
            }

            /// Every file that defines one of the upstream's services.
            pub(super) async fn files(channel: Channel) -> Result<Vec<Vec<u8>>, String> {
                let mut client = ServerReflectionClient::new(channel);
                let list =
                    futures_util::stream::iter([ask(MessageRequest::ListServices(String::new()))]);
                let mut answers = client
                    .server_reflection_info(list)
                    .await
                    .map_err(|s| s.message().to_owned())?
                    .into_inner();
                let services: Vec<String> = match answers.message().await {
                    Ok(Some(answer)) => match answer.message_response {
                        Some(MessageResponse::ListServicesResponse(list)) => {
                            list.service.into_iter().map(|s| s.name).collect()
                        }
                        _ => return Err("no list of services".into()),
                    },
                    Ok(None) => return Err("no answer".into()),
                    Err(status) => return Err(status.message().to_owned()),
                };
                let asks: Vec<ServerReflectionRequest> = services
                    .into_iter()
                    .filter(|s| !super::OWN.contains(&s.as_str()))
                    .map(|s| ask(MessageRequest::FileContainingSymbol(s)))
                    .collect();
                let wanted = asks.len();
                let mut answers = client
                    .server_reflection_info(futures_util::stream::iter(asks))
                    .await
                    .map_err(|s| s.message().to_owned())?
                    .into_inner();
                let mut files = Vec::new();
                for _ in 0..wanted {
                    match answers.message().await {
                        Ok(Some(answer)) => {
                            if let Some(MessageResponse::FileDescriptorResponse(found)) =
                                answer.message_response
                            {
                                files.extend(found.file_descriptor_proto);
                            }
                        }
                        Ok(None) => break,
                        Err(status) => return Err(status.message().to_owned()),
                    }
                }
                Ok(files)
            }
        }
    };
}

reflection_client!(v1);
reflection_client!(v1alpha);
