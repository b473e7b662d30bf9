//! `AdminService`: the dead letters, for operators to page through, read and replay onto the
//! stream they came from once the cause is fixed. Payloads are decoded for people to read
//! ([`payload`]) beside the raw bytes.

mod payload;

use baton_proto::v1::{
    self, GetDeadLetterRequest, GetDeadLetterResponse, ListDeadLettersRequest,
    ListDeadLettersResponse, ReplayDeadLetterRequest, ReplayDeadLetterResponse,
    admin_service_server::AdminService,
};
use baton_queue::Replay;
use tonic::{Request, Response, Status};

use super::{Api, page_size};
use crate::error::ApiError;

/// Letters per page when the request asks for 0.
const DEFAULT_PAGE_SIZE: u32 = 100;
/// Most letters per page.
const MAX_PAGE_SIZE: u32 = 1_000;

/// A letter as the API shows it, its payload decoded where it is one of Baton's messages.
fn entry(id: String, letter: v1::DeadLetter) -> v1::DeadLetterEntry {
    let decoded = payload::decode_any(&letter.payload, payload::candidates(&letter.stream));
    let (payload_type, payload_json) = decoded
        .map(|(name, json)| (name.to_owned(), json))
        .unwrap_or_default();
    v1::DeadLetterEntry {
        id,
        stream: letter.stream,
        entry_id: letter.entry_id,
        reason: letter.reason,
        dead_at: letter.dead_at,
        payload_type,
        payload_json,
        payload: letter.payload,
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "dead letter {id} does not exist (it may have been replayed, or trimmed as newer letters \
         arrived)"
    ))
}

/// The id a request names, which must be given.
fn required_id(id: &str) -> Result<&str, ApiError> {
    match id.trim() {
        "" => Err(ApiError::InvalidArgument(
            "id: required (the id `ListDeadLetters` shows)".into(),
        )),
        id => Ok(id),
    }
}

impl Api {
    async fn dead_letter(&self, id: &str) -> Result<v1::DeadLetterEntry, ApiError> {
        let letter = self.queue.get_dead_letter(id).await?;
        letter
            .map(|letter| entry(id.to_owned(), letter))
            .ok_or_else(|| not_found(id))
    }
}

#[tonic::async_trait]
impl AdminService for Api {
    #[tracing::instrument(skip_all, fields(page_size, after))]
    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let request = request.into_inner();
        let size = match page_size(request.page_size)? {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let span = tracing::Span::current();
        span.record("page_size", size);
        span.record("after", request.page_token.as_str());
        let after = Some(request.page_token.as_str()).filter(|t| !t.is_empty());
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        // One more than the page, to know whether another page follows.
        let mut letters = self
            .queue
            .list_dead_letters(after, size + 1)
            .await
            .map_err(ApiError::from)?;
        let more = letters.len() > size;
        letters.truncate(size);
        let next_page_token = match letters.last() {
            Some((id, _)) if more => id.clone(),
            _ => String::new(),
        };
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters: letters
                .into_iter()
                .map(|(id, letter)| entry(id, letter))
                .collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(dead_letter = %request.get_ref().id))]
    async fn get_dead_letter(
        &self,
        request: Request<GetDeadLetterRequest>,
    ) -> Result<Response<GetDeadLetterResponse>, Status> {
        let id = required_id(&request.get_ref().id)?;
        let dead_letter = self.dead_letter(id).await?;
        Ok(Response::new(GetDeadLetterResponse {
            dead_letter: Some(dead_letter),
        }))
    }

    #[tracing::instrument(skip_all, fields(dead_letter = %request.get_ref().id))]
    async fn replay_dead_letter(
        &self,
        request: Request<ReplayDeadLetterRequest>,
    ) -> Result<Response<ReplayDeadLetterResponse>, Status> {
        let id = required_id(&request.get_ref().id)?;
        // Read first, to answer with what was replayed; the replay itself checks again.
        let dead_letter = self.dead_letter(id).await?;
        if dead_letter.payload_type == payload::JOB_RESULT {
            // A job stream's workers cannot read a result, and the attempt it reports is over.
            return Err(ApiError::FailedPrecondition(format!(
                "dead letter {id} records the result of a job's last failed attempt, which \
                 replaying cannot change; start a new run instead"
            ))
            .into());
        }
        match self
            .queue
            .replay_dead_letter(id)
            .await
            .map_err(ApiError::from)?
        {
            Replay::Replayed { stream, entry_id } => {
                tracing::info!(%stream, entry = %entry_id, reason = %dead_letter.reason, "dead letter replayed");
                Ok(Response::new(ReplayDeadLetterResponse {
                    dead_letter: Some(dead_letter),
                    stream: stream.to_string(),
                    entry_id,
                }))
            }
            Replay::NotFound => Err(not_found(id).into()),
            Replay::Unreplayable { stream } => {
                let from = match stream.as_str() {
                    "" => "names no stream".to_owned(),
                    stream => format!("came from `{stream}`"),
                };
                Err(ApiError::FailedPrecondition(format!(
                    "dead letter {id} {from}, not the runner inbox or a job stream, so it cannot be \
                     replayed"
                ))
                .into())
            }
        }
    }
}
