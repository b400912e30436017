//! The sink that sends request bodies to Langfuse or a collector: media first, then the spans;
//! what cannot be delivered goes to the spool; scores go their own route.

use std::collections::HashSet;

use super::encode::{encode, Envelope, Gzip};
use crate::export::auth::{AuthCheck, AuthError};
use crate::export::media_upload::{uploads_of, MediaUploader, Upload};
use crate::export::scores;
use crate::export::sink::{Failure, ScoresSent, Sink};
use crate::export::spool::Spool;
use crate::export::transport::{Transport, Undelivered};
use crate::export::waiter::Waiter;
use crate::record::FinishedScore;
use crate::record::FinishedSpan;

/// The OTLP/HTTP sink: encode, gzip, post; with a spool, what cannot be delivered is kept on disk.
pub(crate) struct OtlpSink {
    transport: Transport,
    /// Uploads the media of each batch before it is sent.
    media: MediaUploader,
    envelope: Envelope,
    /// The protobuf of the current request; kept between requests.
    body: Vec<u8>,
    /// The gzipped body of the current request, and its compressor; kept between requests.
    gzip: Gzip,
    spool: Option<Spool>,
    /// The media of the last batch sent that were registered (and uploaded, or known), by
    /// observation and media id: a batch the deadline then leaves to the spool goes without them.
    media_done: HashSet<(String, String)>,
}

impl OtlpSink {
    pub(crate) fn new(transport: Transport, envelope: Envelope, spool: Option<Spool>) -> Self {
        Self {
            media: MediaUploader::new(transport.counters()),
            transport,
            envelope,
            body: Vec::new(),
            gzip: Gzip::default(),
            spool,
            media_done: HashSet::new(),
        }
    }

    /// Uploads the media of `batch`; returns those to try again later.
    fn upload_media(&mut self, batch: &[FinishedSpan], waiter: &mut Waiter) -> Vec<Upload> {
        self.media_done.clear();
        let uploads = uploads_of(batch);
        if uploads.is_empty() {
            return uploads;
        }
        let keys: Vec<(String, String)> = uploads
            .iter()
            .map(|u| (u.observation_id.clone(), u.media.media_id.clone()))
            .collect();
        let later = self.media.upload(&self.transport, uploads, waiter);
        self.media_done.extend(keys);
        for upload in &later {
            self.media_done
                .remove(&(upload.observation_id.clone(), upload.media.media_id.clone()));
        }
        later
    }
}

impl Sink for OtlpSink {
    fn export(&mut self, batch: Vec<FinishedSpan>, waiter: &mut Waiter) -> Result<(), Failure> {
        self.resume(waiter);
        let media_later = self.upload_media(&batch, waiter);
        encode(&mut self.body, &batch, &self.envelope);
        self.gzip
            .zip(&self.body)
            .map_err(|problem| Failure::Dropped(Undelivered::GaveUp(problem)))?;
        match self.transport.post(self.gzip.bytes(), waiter) {
            Ok(()) => Ok(()),
            Err(Undelivered::GaveUp(reason)) => match self.spool.as_mut() {
                Some(spool) => match spool.keep(self.gzip.bytes(), batch.len(), &media_later) {
                    Ok(()) => Err(Failure::Spooled(Undelivered::GaveUp(reason))),
                    Err(problem) => Err(Failure::Dropped(Undelivered::GaveUp(format!(
                        "{reason}; {problem}"
                    )))),
                },
                None => Err(Failure::Dropped(Undelivered::GaveUp(reason))),
            },
            Err(why @ Undelivered::Deadline(_)) => Err(Failure::Deadline(why, batch)),
            Err(why) => Err(Failure::Dropped(why)),
        }
    }

    fn resume(&mut self, waiter: &mut Waiter) {
        let (Some(spool), transport, media) =
            (self.spool.as_mut(), &mut self.transport, &mut self.media)
        else {
            return;
        };
        if spool.due() {
            spool.send_waiting(|batch| {
                // As a live batch: its media first, then its spans.
                let failures = media.try_upload(transport, batch.media, waiter);
                let sent = transport.post_once(&batch.body, waiter);
                // A batch that stays in the spool (anything but delivered or refused) keeps its
                // media and tries them again: their failures count once the batch leaves it.
                let stays = matches!(&sent, Err(why) if !matches!(why, Undelivered::Refused(_)));
                if !stays {
                    media.settle(failures);
                }
                sent
            });
        }
    }

    fn keep(&mut self, batch: Vec<FinishedSpan>) -> Option<Result<usize, String>> {
        let spool = self.spool.as_mut()?;
        let done = &self.media_done;
        let media: Vec<Upload> = uploads_of(&batch)
            .into_iter()
            .filter(|u| !done.contains(&(u.observation_id.clone(), u.media.media_id.clone())))
            .collect();
        encode(&mut self.body, &batch, &self.envelope);
        let gzip = &mut self.gzip;
        let kept = gzip
            .zip(&self.body)
            .and_then(|()| spool.keep(gzip.bytes(), batch.len(), &media));
        Some(kept.map(|()| batch.len()))
    }

    fn export_scores(&mut self, batch: Vec<FinishedScore>, waiter: &mut Waiter) -> ScoresSent {
        if !self.transport.takes_scores() {
            return ScoresSent {
                unsupported: batch.len(),
                ..ScoresSent::default()
            };
        }
        scores::deliver(&mut self.transport, batch, waiter)
    }

    fn auth_check(&mut self, waiter: &mut Waiter) -> Result<AuthCheck, AuthError> {
        self.transport.projects(waiter)
    }
}
