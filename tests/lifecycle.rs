//! The Responses lifecycle and Conversations, end to end: generated clients -> the gateway ->
//! the fake OpenAI (which keeps stored responses, background jobs and conversations).
//!
//! Every RPC and every error of the lifecycle is here: retrieve, delete, cancel, input items,
//! resume, token counts, compaction, conversations; who may see which id (two callers, every
//! path that names an id, with no upstream call for a refusal); ids that would leave their URL
//! path; `include[]` as OpenAI's query parameters; the transparent resume of a broken or
//! silent background stream at several points, and where the caller's deadline stops it; and
//! `cancel_on_disconnect`.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, drain, reason, with_metadata};
use openai_grpc_gateway::{
    auth::parse_tokens,
    fake::{FakeOpenAi, Scenario},
    pb::{
        CancelResponseRequest, CompactResponseRequest, CountInputTokensRequest,
        CreateConversationItemsRequest, CreateConversationRequest, CreateResponseRequest,
        CreateResponseResponse, DeleteConversationItemRequest, DeleteConversationRequest,
        DeleteResponseRequest, GetConversationItemRequest, GetConversationRequest,
        GetResponseRequest, InputItem, InputMessage, ListConversationItemsRequest,
        ListInputItemsRequest, PromptCacheOptions, ResumeResponseRequest,
        UpdateConversationRequest, conversations_service_client::ConversationsServiceClient,
        create_response_response::Event, input_item, output_item,
    },
};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdefgh";

/// A gateway with two callers, `alice` and `bob`; the fake's background jobs run fast.
async fn two_callers() -> Harness {
    two_callers_with(|_| {}).await
}

async fn two_callers_with(tweak: impl FnOnce(&mut openai_grpc_gateway::config::Config)) -> Harness {
    let h = Harness::start_with(|c| {
        c.auth.tokens = parse_tokens(&format!("alice={ALICE},bob={BOB}"), "test").unwrap();
        tweak(c);
    })
    .await;
    h.fake
        .set_background_pacing(Duration::from_millis(20), Duration::from_millis(5));
    h
}

/// `message` as `token`'s call.
fn by<T>(token: &str, message: T) -> Request<T> {
    with_metadata(message, &[("authorization", &format!("Bearer {token}"))])
}

fn conversations(h: &Harness) -> ConversationsServiceClient<Channel> {
    ConversationsServiceClient::new(h.channel())
}

fn text(input: &str) -> CreateResponseRequest {
    CreateResponseRequest {
        model: "gpt-4.1".into(),
        input_text: Some(input.into()),
        ..Default::default()
    }
}

fn not_streamed(input: &str) -> CreateResponseRequest {
    CreateResponseRequest {
        stream: Some(false),
        ..text(input)
    }
}

fn user_message(text: &str) -> InputItem {
    InputItem {
        item: Some(input_item::Item::Message(InputMessage {
            role: "user".into(),
            content_text: Some(text.into()),
            ..Default::default()
        })),
    }
}

/// The Response of a single-message (non-streamed) CreateResponse.
async fn create_stored(h: &Harness, token: &str, input: &str) -> openai_grpc_gateway::pb::Response {
    let (messages, end) = h.call(by(token, not_streamed(input))).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    match messages.into_iter().next().and_then(|m| m.event) {
        Some(Event::Completed(e)) | Some(Event::Queued(e)) => e.response.unwrap(),
        other => panic!("not a finished response: {other:?}"),
    }
}

/// The id a lifecycle event carries.
fn response_id(message: &CreateResponseResponse) -> Option<String> {
    match message.event.as_ref()? {
        Event::Created(e) | Event::Queued(e) | Event::Completed(e) | Event::InProgress(e) => {
            e.response.as_ref()?.id.clone()
        }
        _ => None,
    }
}

fn assert_not_found(status: &Status, what: &str) {
    assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}");
    assert!(
        status.message().contains("may not exist"),
        "{what}: {}",
        status.message()
    );
}

/// Sequence numbers from 0, each once, in order, with exactly one `created` and a final
/// `completed`.
fn assert_whole_stream(messages: &[CreateResponseResponse]) {
    let seqs: Vec<i32> = messages.iter().filter_map(|m| m.sequence_number).collect();
    let want: Vec<i32> = (0..seqs.len() as i32).collect();
    assert_eq!(seqs, want, "every event exactly once, contiguous");
    let created = messages
        .iter()
        .filter(|m| matches!(m.event, Some(Event::Created(_))))
        .count();
    assert_eq!(created, 1, "one created event");
    assert!(
        matches!(
            messages
                .iter()
                .rev()
                .find(|m| m.sequence_number.is_some())
                .and_then(|m| m.event.as_ref()),
            Some(Event::Completed(_))
        ),
        "ends with completed"
    );
}

#[tokio::test]
async fn a_stored_response_can_be_read_listed_continued_and_deleted() {
    let h = two_callers().await;
    let first = create_stored(&h, ALICE, "Remember the number 7.").await;
    let id = first.id.clone().unwrap();

    let got = h
        .responses()
        .get_response(by(
            ALICE,
            GetResponseRequest {
                response_id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert!(
        got.metadata().get("x-request-id").is_some(),
        "upstream metadata"
    );
    let got = got.into_inner().response.unwrap();
    assert_eq!(got.id.as_deref(), Some(id.as_str()));
    assert_eq!(got.output_text, first.output_text);
    assert!(!got.output_text.is_empty());

    let items = h
        .responses()
        .list_input_items(by(
            ALICE,
            ListInputItemsRequest {
                response_id: id.clone(),
                limit: Some(20),
                order: Some("asc".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(items.data.len(), 1, "{items:?}");
    assert_eq!(items.has_more, Some(false));
    assert!(matches!(
        items.data[0].item,
        Some(output_item::Item::Message(_))
    ));

    let (messages, end) = h
        .call(by(
            ALICE,
            CreateResponseRequest {
                previous_response_id: Some(id.clone()),
                ..not_streamed("What was the number?")
            },
        ))
        .await
        .unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_eq!(messages.len(), 1);
    let sent = h.fake.requests().last().unwrap().json.clone().unwrap();
    assert_eq!(sent["previous_response_id"], id.as_str());

    let deleted = h
        .responses()
        .delete_response(by(
            ALICE,
            DeleteResponseRequest {
                response_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, Some(true));
    assert_eq!(deleted.id.as_deref(), Some(id.as_str()));
    let asked = h.fake.requests().len();
    let gone = h
        .responses()
        .get_response(by(
            ALICE,
            GetResponseRequest {
                response_id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_not_found(&gone, "a deleted response");
    assert_eq!(
        h.fake.requests().len(),
        asked,
        "refused without an upstream call"
    );
}

#[tokio::test]
async fn input_items_come_in_pages() {
    let h = Harness::start().await;
    let (messages, _) = h
        .call(CreateResponseRequest {
            input_items: vec![
                user_message("one"),
                user_message("two"),
                user_message("three"),
            ],
            input_text: None,
            ..not_streamed("")
        })
        .await
        .unwrap();
    let id = response_id(&messages[0]).unwrap();
    let page = |after: Option<String>| ListInputItemsRequest {
        response_id: id.clone(),
        limit: Some(2),
        order: Some("asc".into()),
        after,
        ..Default::default()
    };
    let first = h
        .responses()
        .list_input_items(page(None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.data.len(), 2);
    assert_eq!(first.has_more, Some(true));
    let second = h
        .responses()
        .list_input_items(page(first.last_id.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.data.len(), 1);
    assert_eq!(second.has_more, Some(false));
    let path = h.fake.requests().last().unwrap().path.clone();
    assert!(
        path.contains("limit=2") && path.contains("order=asc") && path.contains("after="),
        "{path}"
    );
}

#[tokio::test]
async fn another_caller_gets_not_found_on_every_path_without_an_upstream_call() {
    let h = two_callers().await;
    let response = create_stored(&h, ALICE, "mine").await.id.unwrap();
    // The id inside a `response.queued` event is bound too.
    let mut background = h
        .responses()
        .create_response(by(
            ALICE,
            CreateResponseRequest {
                background: Some(true),
                ..text("a background job")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = background.message().await.unwrap().unwrap();
    let queued = response_id(&first).unwrap();
    drop(background);
    let conversation = conversations(&h)
        .create_conversation(by(ALICE, CreateConversationRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap()
        .id
        .unwrap();
    let asked = h.fake.requests().len();

    let r = || h.responses();
    let c = || conversations(&h);
    let mut refusals: Vec<(&str, Status)> = Vec::new();
    for id in [&response, &queued] {
        refusals.push((
            "GetResponse",
            r().get_response(by(
                BOB,
                GetResponseRequest {
                    response_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err(),
        ));
        refusals.push((
            "DeleteResponse",
            r().delete_response(by(
                BOB,
                DeleteResponseRequest {
                    response_id: id.clone(),
                },
            ))
            .await
            .unwrap_err(),
        ));
        refusals.push((
            "CancelResponse",
            r().cancel_response(by(
                BOB,
                CancelResponseRequest {
                    response_id: id.clone(),
                },
            ))
            .await
            .unwrap_err(),
        ));
        refusals.push((
            "ListInputItems",
            r().list_input_items(by(
                BOB,
                ListInputItemsRequest {
                    response_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err(),
        ));
        refusals.push((
            "ResumeResponse",
            r().resume_response(by(
                BOB,
                ResumeResponseRequest {
                    response_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .err()
            .unwrap(),
        ));
        refusals.push((
            "previous_response_id",
            h.call(by(
                BOB,
                CreateResponseRequest {
                    previous_response_id: Some(id.clone()),
                    ..text("x")
                },
            ))
            .await
            .unwrap_err(),
        ));
        refusals.push((
            "CountInputTokens",
            r().count_input_tokens(by(
                BOB,
                CountInputTokensRequest {
                    previous_response_id: Some(id.clone()),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err(),
        ));
        refusals.push((
            "CompactResponse",
            r().compact_response(by(
                BOB,
                CompactResponseRequest {
                    model: "gpt-5".into(),
                    previous_response_id: Some(id.clone()),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err(),
        ));
    }
    let conv = conversation.clone();
    refusals.push((
        "conversation",
        h.call(by(
            BOB,
            CreateResponseRequest {
                conversation: Some(conv.clone()),
                ..text("x")
            },
        ))
        .await
        .unwrap_err(),
    ));
    refusals.push((
        "conversation_object",
        h.call(by(
            BOB,
            CreateResponseRequest {
                conversation_object: Some(openai_grpc_gateway::pb::ConversationReference {
                    id: conv.clone(),
                }),
                ..text("x")
            },
        ))
        .await
        .unwrap_err(),
    ));
    refusals.push((
        "CountInputTokens conversation",
        r().count_input_tokens(by(
            BOB,
            CountInputTokensRequest {
                conversation: Some(conv.clone()),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err(),
    ));
    refusals.push((
        "GetConversation",
        c().get_conversation(by(
            BOB,
            GetConversationRequest {
                conversation_id: conv.clone(),
            },
        ))
        .await
        .unwrap_err(),
    ));
    refusals.push((
        "UpdateConversation",
        c().update_conversation(by(
            BOB,
            UpdateConversationRequest {
                conversation_id: conv.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err(),
    ));
    refusals.push((
        "DeleteConversation",
        c().delete_conversation(by(
            BOB,
            DeleteConversationRequest {
                conversation_id: conv.clone(),
            },
        ))
        .await
        .unwrap_err(),
    ));
    refusals.push((
        "CreateConversationItems",
        c().create_conversation_items(by(
            BOB,
            CreateConversationItemsRequest {
                conversation_id: conv.clone(),
                items: vec![user_message("hi")],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err(),
    ));
    refusals.push((
        "ListConversationItems",
        c().list_conversation_items(by(
            BOB,
            ListConversationItemsRequest {
                conversation_id: conv.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err(),
    ));
    refusals.push((
        "GetConversationItem",
        c().get_conversation_item(by(
            BOB,
            GetConversationItemRequest {
                conversation_id: conv.clone(),
                item_id: "msg_1".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err(),
    ));
    refusals.push((
        "DeleteConversationItem",
        c().delete_conversation_item(by(
            BOB,
            DeleteConversationItemRequest {
                conversation_id: conv.clone(),
                item_id: "msg_1".into(),
            },
        ))
        .await
        .unwrap_err(),
    ));
    for (what, status) in &refusals {
        assert_not_found(status, what);
        assert!(
            reason(status).ends_with("_NOT_FOUND") && !reason(status).starts_with("UPSTREAM"),
            "{what}: {}",
            reason(status)
        );
    }
    assert_eq!(h.fake.requests().len(), asked, "no refusal reached OpenAI");

    // The owner still can.
    let own = h
        .responses()
        .get_response(by(
            ALICE,
            GetResponseRequest {
                response_id: queued,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(own.response.is_some());
    conversations(&h)
        .get_conversation(by(
            ALICE,
            GetConversationRequest {
                conversation_id: conversation,
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn ids_the_gateway_did_not_create_are_refused_unless_allowed() {
    // An id made straight at the upstream (before the gateway was deployed, say).
    let h = two_callers().await;
    let foreign = reqwest::Client::new()
        .post(format!("{}/responses", h.fake.base_url()))
        .json(&serde_json::json!({"model": "gpt-4.1", "input": "hi"}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let asked = h.fake.requests().len();
    let get = |h: &Harness| {
        let mut client = h.responses();
        let id = foreign.clone();
        async move {
            client
                .get_response(by(
                    ALICE,
                    GetResponseRequest {
                        response_id: id,
                        ..Default::default()
                    },
                ))
                .await
        }
    };
    assert_not_found(&get(&h).await.unwrap_err(), "a foreign id");
    assert_eq!(h.fake.requests().len(), asked);

    let allowed = two_callers_with(|c| c.allow_foreign_ids = true).await;
    // The same id at the other fake does not exist there: OpenAI's own 404 comes back.
    let upstream = get(&allowed).await.unwrap_err();
    assert_eq!(upstream.code(), Code::NotFound);
    assert_eq!(reason(&upstream), "UPSTREAM_NOT_FOUND");
    assert!(
        upstream.message().contains("may not exist"),
        "{}",
        upstream.message()
    );
    assert_eq!(allowed.fake.requests().len(), 1, "it went upstream");
}

#[tokio::test]
async fn without_caller_auth_an_unknown_id_is_openais_404() {
    let h = Harness::start().await;
    let status = h
        .responses()
        .get_response(GetResponseRequest {
            response_id: "resp_unknown".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_not_found(&status, "unknown id");
    assert_eq!(reason(&status), "UPSTREAM_NOT_FOUND");
    assert!(
        status.message().contains("store: false"),
        "{}",
        status.message()
    );
    let path = h.fake.requests()[0].path.clone();
    assert_eq!(path, "/v1/responses/resp_unknown");
}

#[tokio::test]
async fn lifecycle_calls_go_to_the_profile_that_created_the_response() {
    let staging = FakeOpenAi::start().await.unwrap();
    let staging_url = staging.base_url();
    let h = Harness::start_with(move |c| {
        use openai_grpc_gateway::{config::Profile, openai::UpstreamConfig};
        let production = c.upstream.clone();
        c.profiles.default = "production".into();
        for (name, upstream) in [
            ("production", production),
            ("staging", UpstreamConfig::new(&staging_url).unwrap()),
        ] {
            c.profiles.named.insert(
                name.into(),
                Profile {
                    upstream,
                    callers: None,
                },
            );
        }
    })
    .await;
    let (messages, _) = h
        .call(with_metadata(
            not_streamed("hi"),
            &[("x-openai-profile", "staging")],
        ))
        .await
        .unwrap();
    let id = response_id(&messages[0]).unwrap();
    // No profile named: the call still goes to staging, where the response lives.
    let got = h
        .responses()
        .get_response(GetResponseRequest {
            response_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.response.unwrap().id.as_deref(), Some(id.as_str()));
    assert_eq!(staging.requests().len(), 2);
    assert!(h.fake.requests().is_empty(), "production was not asked");
}

#[tokio::test]
async fn ids_that_would_leave_their_path_are_invalid_and_never_sent() {
    let h = Harness::start().await;
    let c = || conversations(&h);
    for bad in ["../files", "a?b", "a/b", "a#b", "a%2F", " resp_1", ""] {
        let statuses = [
            h.responses()
                .get_response(GetResponseRequest {
                    response_id: bad.into(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            h.responses()
                .delete_response(DeleteResponseRequest {
                    response_id: bad.into(),
                })
                .await
                .unwrap_err(),
            h.responses()
                .cancel_response(CancelResponseRequest {
                    response_id: bad.into(),
                })
                .await
                .unwrap_err(),
            h.responses()
                .list_input_items(ListInputItemsRequest {
                    response_id: bad.into(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            h.responses()
                .resume_response(ResumeResponseRequest {
                    response_id: bad.into(),
                    ..Default::default()
                })
                .await
                .err()
                .unwrap(),
            c().get_conversation(GetConversationRequest {
                conversation_id: bad.into(),
            })
            .await
            .unwrap_err(),
            c().delete_conversation_item(DeleteConversationItemRequest {
                conversation_id: "conv_1".into(),
                item_id: bad.into(),
            })
            .await
            .unwrap_err(),
        ];
        for status in statuses {
            assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
            let violations = status
                .get_error_details()
                .bad_request()
                .unwrap()
                .field_violations
                .clone();
            assert!(!violations.is_empty());
        }
    }
    assert!(
        h.fake.requests().is_empty(),
        "{:?}",
        h.fake
            .requests()
            .iter()
            .map(|r| &r.path)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn paging_parameters_are_checked() {
    let h = Harness::start().await;
    for (limit, order, field) in [
        (Some(0), None, "limit"),
        (Some(101), None, "limit"),
        (None, Some("up"), "order"),
    ] {
        let status = h
            .responses()
            .list_input_items(ListInputItemsRequest {
                response_id: "resp_1".into(),
                limit,
                order: order.map(str::to_owned),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let violations = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert_eq!(violations[0].field, field);
    }
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn cancel_stops_a_background_job_and_refuses_a_foreground_response() {
    let h = two_callers().await;
    h.fake
        .set_background_pacing(Duration::from_millis(500), Duration::from_millis(50));
    let queued = create_stored_background(&h).await;
    let cancelled = h
        .responses()
        .cancel_response(by(
            ALICE,
            CancelResponseRequest {
                response_id: queued.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    assert_eq!(cancelled.status.as_deref(), Some("cancelled"));
    let sent = h.fake.requests().last().unwrap().clone();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", format!("/v1/responses/{queued}/cancel").as_str())
    );

    let foreground = create_stored(&h, ALICE, "quick").await.id.unwrap();
    let refused = h
        .responses()
        .cancel_response(by(
            ALICE,
            CancelResponseRequest {
                response_id: foreground,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "RESPONSE_NOT_CANCELLABLE");
    assert!(
        refused.message().contains("background"),
        "{}",
        refused.message()
    );
    let info = refused.get_error_details().error_info().unwrap().clone();
    assert_eq!(info.metadata["upstreamHttpStatus"], "400");
}

/// A background response created with `stream: false`: its id.
async fn create_stored_background(h: &Harness) -> String {
    let response = create_stored_request(
        h,
        CreateResponseRequest {
            background: Some(true),
            ..not_streamed("a long job")
        },
    )
    .await;
    assert_eq!(response.status.as_deref(), Some("queued"));
    response.id.unwrap()
}

async fn create_stored_request(
    h: &Harness,
    request: CreateResponseRequest,
) -> openai_grpc_gateway::pb::Response {
    let (messages, end) = h.call(by(ALICE, request)).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    match messages.into_iter().next().and_then(|m| m.event) {
        Some(Event::Queued(e) | Event::Completed(e) | Event::InProgress(e)) => e.response.unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_finished_background_response_comes_back_from_cancel_unchanged_and_polling_sees_it_finish()
 {
    let h = two_callers().await;
    let id = create_stored_background(&h).await;
    // Poll as the README shows, until a terminal status (bounded).
    let started = Instant::now();
    let status = loop {
        let response = h
            .responses()
            .get_response(by(
                ALICE,
                GetResponseRequest {
                    response_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .response
            .unwrap();
        let status = response.status.clone().unwrap_or_default();
        if matches!(
            status.as_str(),
            "completed" | "failed" | "incomplete" | "cancelled"
        ) {
            assert!(!response.output_text.is_empty());
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the job never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, "completed");
    let again = h
        .responses()
        .cancel_response(by(ALICE, CancelResponseRequest { response_id: id }))
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    assert_eq!(again.status.as_deref(), Some("completed"));
}

#[tokio::test]
async fn resume_response_continues_after_a_sequence_number() {
    let h = two_callers().await;
    let mut stream = h
        .responses()
        .create_response(by(
            ALICE,
            CreateResponseRequest {
                background: Some(true),
                ..text("resume me")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let m = stream.message().await.unwrap().unwrap();
        if m.sequence_number.is_some() {
            seen.push(m);
        }
    }
    let id = response_id(&seen[0]).unwrap();
    drop(stream); // the caller's own stream broke
    let rest = h
        .responses()
        .resume_response(by(
            ALICE,
            ResumeResponseRequest {
                response_id: id.clone(),
                starting_after: Some(3),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (rest, end) = drain(rest).await;
    assert!(end.is_none(), "{end:?}");
    seen.extend(rest.into_iter().filter(|m| m.sequence_number.is_some()));
    assert_whole_stream(&seen);
    let path = h.fake.requests().last().unwrap().path.clone();
    assert!(
        path.contains("stream=true") && path.contains("starting_after=3"),
        "{path}"
    );
}

#[tokio::test]
async fn resuming_a_foreground_response_gets_openais_answer() {
    let h = two_callers().await;
    let id = create_stored(&h, ALICE, "not background").await.id.unwrap();
    let status = h
        .responses()
        .resume_response(by(
            ALICE,
            ResumeResponseRequest {
                response_id: id,
                ..Default::default()
            },
        ))
        .await
        .err()
        .unwrap();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "UPSTREAM_INVALID_REQUEST");
}

/// A background stream whose first upstream connection drops after `k` events (`None`: never).
async fn background_dropped_after(
    k: Option<usize>,
) -> (Harness, Vec<CreateResponseResponse>, Option<Status>) {
    let h = two_callers().await;
    if let Some(k) = k {
        h.fake.push(Scenario::drop_after(k));
    }
    let stream = h
        .responses()
        .create_response(by(
            ALICE,
            CreateResponseRequest {
                background: Some(true),
                ..text("a job whose connection breaks")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (messages, end) = drain(stream).await;
    let messages = messages
        .into_iter()
        .filter(|m| m.sequence_number.is_some())
        .collect();
    (h, messages, end)
}

#[tokio::test]
async fn a_broken_background_stream_is_resumed_by_the_gateway_at_any_point() {
    // The default transcript: created, queued, in_progress, item added, part added, deltas...,
    // text done, part done, item done, completed.
    let total = {
        let (_, messages, end) = background_dropped_after(None).await;
        assert!(end.is_none());
        messages.len()
    };
    assert!(total > 8, "{total}");
    // Right after created, before the first delta, in the middle, after the last delta, just
    // before completed.
    for k in [1, 4, total / 2, total - 4, total - 1] {
        let (h, messages, end) = background_dropped_after(Some(k)).await;
        assert!(end.is_none(), "drop after {k}: {end:?}");
        assert_whole_stream(&messages);
        assert_eq!(messages.len(), total, "drop after {k}");
        let resumed = h
            .fake
            .requests()
            .into_iter()
            .find(|r| r.method == "GET" && r.path.contains("stream=true"))
            .unwrap_or_else(|| panic!("drop after {k}: no resume request"));
        assert!(
            resumed.path.contains(&format!("starting_after={}", k - 1)),
            "drop after {k}: {}",
            resumed.path
        );
        let metrics = h.scrape().await;
        assert!(
            metrics.contains(
                r#"gateway_stream_resumes_total{method="CreateResponse",outcome="resumed"} 1"#
            ),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn a_stream_that_cannot_be_resumed_says_where_to_resume() {
    let h = two_callers().await;
    h.fake.push(Scenario::drop_after(5));
    for _ in 0..4 {
        // Each re-open: the status check succeeds, the stream drops at once.
        h.fake.push(Scenario::Default {
            framing: Default::default(),
            ending: Default::default(),
        });
        h.fake.push(Scenario::drop_after(0));
    }
    let stream = h
        .responses()
        .create_response(by(
            ALICE,
            CreateResponseRequest {
                background: Some(true),
                ..text("a job whose upstream keeps breaking")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (messages, end) = drain(stream).await;
    let end = end.expect("the stream ends with a status");
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert_eq!(reason(&end), "RESUME_FAILED");
    let info = end.get_error_details().error_info().unwrap().clone();
    let id = response_id(&messages[0]).unwrap();
    assert_eq!(info.metadata["responseId"], id);
    assert_eq!(info.metadata["startingAfter"], "4");
    assert!(h.scrape().await.contains(r#"outcome="gave_up"} 1"#));
}

#[tokio::test]
async fn a_non_background_stream_is_not_resumed() {
    let h = Harness::start().await;
    h.fake.push(Scenario::drop_after(3));
    let (_, end) = h.call(text("foreground")).await.unwrap();
    let end = end.unwrap();
    assert_eq!(end.code(), Code::Unavailable);
    assert_eq!(reason(&end), "UPSTREAM_CONNECTION_LOST");
    assert_eq!(h.fake.requests().len(), 1, "no resume");
}

/// The idle limit of the stall tests: far above the gaps of the fake's pacing (20 ms queued, then
/// an event every 5 ms), so only a stall trips it.
const IDLE: Duration = Duration::from_millis(400);

#[tokio::test]
async fn a_background_stream_silent_past_the_idle_limit_is_resumed_by_the_gateway() {
    let h = two_callers_with(|c| c.timeouts.idle = Some(IDLE)).await;
    let background = || {
        by(
            ALICE,
            CreateResponseRequest {
                background: Some(true),
                ..text("a job whose connection goes silent")
            },
        )
    };
    let total = {
        let (messages, end) = h.call(background()).await.unwrap();
        assert!(end.is_none(), "{end:?}");
        messages
            .iter()
            .filter(|m| m.sequence_number.is_some())
            .count()
    };
    // Right after created, in the middle, just before completed.
    let points = [1, total / 2, total - 1];
    for k in points {
        let first = h.fake.requests().len();
        // The connection stays open and says nothing after `k` events.
        h.fake.push(Scenario::stall_after(k));
        let (messages, end) = h.call(background()).await.unwrap();
        assert!(end.is_none(), "silent after {k}: {end:?}");
        let messages: Vec<_> = messages
            .into_iter()
            .filter(|m| m.sequence_number.is_some())
            .collect();
        assert_whole_stream(&messages);
        assert_eq!(messages.len(), total, "silent after {k}");
        let requests = h.fake.requests();
        let created = &requests[first];
        let resumed = requests[first..]
            .iter()
            .find(|r| r.method == "GET" && r.path.contains("stream=true"))
            .unwrap_or_else(|| panic!("silent after {k}: no resume request"));
        assert!(
            resumed.path.contains(&format!("starting_after={}", k - 1)),
            "silent after {k}: {}",
            resumed.path
        );
        // The gateway waited out the idle limit, then gave the silent connection up.
        assert!(
            resumed.received_at.duration_since(created.received_at) >= IDLE,
            "silent after {k}: resumed before the idle limit passed"
        );
        tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(first))
            .await
            .expect("the silent connection was closed");
    }
    let metrics = h.scrape().await;
    assert!(
        metrics.contains(&format!(
            r#"gateway_stream_resumes_total{{method="CreateResponse",outcome="resumed"}} {}"#,
            points.len()
        )),
        "{metrics}"
    );
}

/// `message` as alice's call with a `grpc-timeout` of `deadline`.
fn by_alice_within<T>(message: T, deadline: Duration) -> Request<T> {
    let mut request = by(ALICE, message);
    request.set_timeout(deadline);
    request
}

#[tokio::test]
async fn resume_attempts_stop_before_the_callers_deadline_and_say_where_to_resume() {
    let h = two_callers().await;
    h.fake.push(Scenario::drop_after(2));
    for _ in 0..3 {
        // Each re-open: the status check succeeds, the stream drops at once.
        h.fake.push(Scenario::Default {
            framing: Default::default(),
            ending: Default::default(),
        });
        h.fake.push(Scenario::drop_after(0));
    }
    // Re-opens wait 0.2 s, then 0.4 s: the second starts by about 0.65 s; a third would wait
    // 0.8 s more, which no longer fits.
    let deadline = Duration::from_millis(1300);
    let started = Instant::now();
    let stream = h
        .responses()
        .create_response(by_alice_within(
            CreateResponseRequest {
                background: Some(true),
                ..text("a job whose upstream keeps breaking")
            },
            deadline,
        ))
        .await
        .unwrap()
        .into_inner();
    let (messages, end) = drain(stream).await;
    let end = end.expect("the stream ends with a status");
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert_eq!(reason(&end), "RESUME_FAILED");
    assert!(end.message().contains("deadline"), "{}", end.message());
    let info = end.get_error_details().error_info().unwrap().clone();
    assert_eq!(
        info.metadata["responseId"],
        response_id(&messages[0]).unwrap()
    );
    assert_eq!(info.metadata["startingAfter"], "1");
    assert_eq!(info.metadata["resumeAttempts"], "2");
    // The create and two re-opens (status check, stream), all before the deadline; no third.
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 5, "{requests:?}");
    for r in &requests {
        assert!(
            r.received_at < started + deadline,
            "{} {} after the deadline",
            r.method,
            r.path
        );
    }
    assert!(
        h.scrape().await.contains(
            r#"gateway_stream_resumes_total{method="CreateResponse",outcome="gave_up"} 1"#
        )
    );
}

#[tokio::test]
async fn a_resume_the_callers_deadline_cuts_short_is_deadline_exceeded_and_the_last() {
    let h = two_callers().await;
    h.fake.push(Scenario::drop_after(2));
    // The re-open: the status check succeeds, then the stream says nothing.
    h.fake.push(Scenario::Default {
        framing: Default::default(),
        ending: Default::default(),
    });
    h.fake.push(Scenario::stall_after(0));
    let stream = h
        .responses()
        .create_response(by_alice_within(
            CreateResponseRequest {
                background: Some(true),
                ..text("a job whose upstream goes quiet")
            },
            Duration::from_millis(800),
        ))
        .await
        .unwrap()
        .into_inner();
    // Bounded, so that a re-open that ignored the deadline fails the test instead of hanging it.
    let (_, end) = tokio::time::timeout(Duration::from_secs(10), drain(stream))
        .await
        .expect("the deadline ends the stream");
    let end = end.expect("the stream ends with a status");
    assert_eq!(end.code(), Code::DeadlineExceeded, "{end:?}");
    assert_eq!(reason(&end), "DEADLINE_EXCEEDED");
    tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(2))
        .await
        .expect("the re-opened stream was closed at the deadline");
    // The create and one re-open; nothing after the deadline.
    assert_eq!(h.fake.requests().len(), 3, "{:?}", h.fake.requests());
}

/// The `include[]` values of a recorded request's query, decoded, in order. Fails if `include`
/// went in any other form (a bare `include=`, or values joined in one parameter).
fn included(request: &openai_grpc_gateway::fake::RecordedRequest) -> Vec<String> {
    let url = reqwest::Url::parse(&format!("http://fake{}", request.path)).unwrap();
    let mut values = Vec::new();
    for (key, value) in url.query_pairs() {
        if key.starts_with("include") {
            assert_eq!(key, "include[]", "{}", request.path);
            values.push(value.into_owned());
        }
    }
    values
}

#[tokio::test]
async fn include_values_reach_openai_as_repeated_bracketed_query_parameters() {
    // openai-python's client encodes query arrays with brackets (`Querystring(array_format=
    // "brackets")`): one `include[]=value` per value, in order.
    let h = two_callers().await;
    let id = create_stored(&h, ALICE, "include me").await.id.unwrap();
    let wanted = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    let last = |h: &Harness| h.fake.requests().last().unwrap().clone();

    let two = wanted(&[
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    ]);
    h.responses()
        .get_response(by(
            ALICE,
            GetResponseRequest {
                response_id: id.clone(),
                include: two.clone(),
            },
        ))
        .await
        .unwrap();
    let sent = last(&h);
    assert_eq!(
        sent.path.split('?').next(),
        Some(format!("/v1/responses/{id}").as_str())
    );
    assert_eq!(included(&sent), two);

    let one = wanted(&["message.input_image.image_url"]);
    h.responses()
        .list_input_items(by(
            ALICE,
            ListInputItemsRequest {
                response_id: id.clone(),
                limit: Some(5),
                include: one.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let sent = last(&h);
    assert!(sent.path.contains("limit=5"), "{}", sent.path);
    assert_eq!(included(&sent), one);

    let conversation = conversations(&h)
        .create_conversation(by(
            ALICE,
            CreateConversationRequest {
                items: vec![user_message("Hello")],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap()
        .id
        .unwrap();
    let three = wanted(&[
        "file_search_call.results",
        "web_search_call.action.sources",
        "code_interpreter_call.outputs",
    ]);
    conversations(&h)
        .create_conversation_items(by(
            ALICE,
            CreateConversationItemsRequest {
                conversation_id: conversation.clone(),
                items: vec![user_message("Again")],
                include: three.clone(),
            },
        ))
        .await
        .unwrap();
    let sent = last(&h);
    assert_eq!(sent.method, "POST");
    assert_eq!(included(&sent), three);
    assert!(
        sent.json.as_ref().unwrap().get("include").is_none(),
        "include travels in the query, not the body"
    );

    let listed = conversations(&h)
        .list_conversation_items(by(
            ALICE,
            ListConversationItemsRequest {
                conversation_id: conversation.clone(),
                include: two.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .items
        .unwrap();
    assert_eq!(included(&last(&h)), two);

    conversations(&h)
        .get_conversation_item(by(
            ALICE,
            GetConversationItemRequest {
                conversation_id: conversation,
                item_id: listed.first_id.unwrap(),
                include: one.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(included(&last(&h)), one);
}

#[tokio::test]
async fn cancel_on_disconnect_cancels_the_background_job_within_100_ms() {
    let h = two_callers().await;
    h.fake
        .set_background_pacing(Duration::from_millis(50), Duration::from_millis(200));
    let mut stream = h
        .responses()
        .create_response(by(
            ALICE,
            CreateResponseRequest {
                background: Some(true),
                cancel_on_disconnect: Some(true),
                ..text("cancel me when I leave")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let id = response_id(&first).unwrap();
    let left = Instant::now();
    drop(stream);
    let requests = h.fake.wait_requests(2).await;
    let cancel = &requests[1];
    assert_eq!(cancel.method, "POST");
    assert_eq!(cancel.path, format!("/v1/responses/{id}/cancel"));
    let after = cancel.received_at.saturating_duration_since(left);
    assert!(
        after < Duration::from_millis(100),
        "cancelled {after:?} after the caller left"
    );
}

#[tokio::test]
async fn without_cancel_on_disconnect_a_background_job_outlives_its_caller() {
    let h = two_callers().await;
    let mut stream = h
        .responses()
        .create_response(by(
            ALICE,
            CreateResponseRequest {
                background: Some(true),
                ..text("keep running")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let id = response_id(&stream.message().await.unwrap().unwrap()).unwrap();
    drop(stream);
    h.fake.client_gone(0).await;
    // The job finishes by itself: a later resume from the start reads it to the end.
    let rest = h
        .responses()
        .resume_response(by(
            ALICE,
            ResumeResponseRequest {
                response_id: id,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (messages, end) = drain(rest).await;
    assert!(end.is_none());
    assert_whole_stream(
        &messages
            .into_iter()
            .filter(|m| m.sequence_number.is_some())
            .collect::<Vec<_>>(),
    );
    assert!(
        !h.fake
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/cancel")),
        "nobody cancelled it"
    );
}

#[tokio::test]
async fn a_conversation_holds_its_items_and_the_responses_added_to_it() {
    let h = two_callers().await;
    let created = conversations(&h)
        .create_conversation(by(
            ALICE,
            CreateConversationRequest {
                items: vec![user_message("Hello there")],
                metadata: [("topic".to_owned(), "demo".to_owned())].into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    let id = created.id.clone().unwrap();
    assert_eq!(created.metadata["topic"], "demo");

    let updated = conversations(&h)
        .update_conversation(by(
            ALICE,
            UpdateConversationRequest {
                conversation_id: id.clone(),
                metadata: [("topic".to_owned(), "updated".to_owned())].into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(updated.metadata["topic"], "updated");
    let sent = h.fake.requests().last().unwrap().json.clone().unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"metadata": {"topic": "updated"}}),
        "no path id in the body"
    );

    let added = conversations(&h)
        .create_conversation_items(by(
            ALICE,
            CreateConversationItemsRequest {
                conversation_id: id.clone(),
                items: vec![user_message("Second message")],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .items
        .unwrap();
    assert_eq!(added.data.len(), 1);

    // A response in the conversation: its input and output are added to it.
    let (_, end) = h
        .call(by(
            ALICE,
            CreateResponseRequest {
                conversation: Some(id.clone()),
                ..not_streamed("And a question")
            },
        ))
        .await
        .unwrap();
    assert!(end.is_none(), "{end:?}");
    let listed = conversations(&h)
        .list_conversation_items(by(
            ALICE,
            ListConversationItemsRequest {
                conversation_id: id.clone(),
                order: Some("asc".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .items
        .unwrap();
    assert_eq!(
        listed.data.len(),
        4,
        "two items, the response's input and its output: {listed:?}"
    );
    let item_id = listed.first_id.clone().unwrap();

    let item = conversations(&h)
        .get_conversation_item(by(
            ALICE,
            GetConversationItemRequest {
                conversation_id: id.clone(),
                item_id: item_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert!(
        matches!(item.item, Some(output_item::Item::Message(_))),
        "{item:?}"
    );

    let after_delete = conversations(&h)
        .delete_conversation_item(by(
            ALICE,
            DeleteConversationItemRequest {
                conversation_id: id.clone(),
                item_id,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(after_delete.id.as_deref(), Some(id.as_str()));

    let deleted = conversations(&h)
        .delete_conversation(by(
            ALICE,
            DeleteConversationRequest {
                conversation_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, Some(true));
    let gone = conversations(&h)
        .get_conversation(by(
            ALICE,
            GetConversationRequest {
                conversation_id: id,
            },
        ))
        .await
        .unwrap_err();
    assert_not_found(&gone, "a deleted conversation");
}

#[tokio::test]
async fn token_counts_and_compaction() {
    let h = two_callers().await;
    let counted = h
        .responses()
        .count_input_tokens(by(
            ALICE,
            CountInputTokensRequest {
                model: Some("gpt-4.1".into()),
                input_text: Some("How many tokens is this sentence?".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(counted.input_tokens.unwrap_or(0) > 0, "{counted:?}");
    assert_eq!(counted.object.as_deref(), Some("response.input_tokens"));
    let sent = h.fake.requests().last().unwrap().clone();
    assert_eq!(sent.path, "/v1/responses/input_tokens");

    let compacted = h
        .responses()
        .compact_response(by(
            ALICE,
            CompactResponseRequest {
                model: "gpt-5".into(),
                input_items: vec![user_message("a long history"), user_message("more")],
                prompt_cache_options: Some(PromptCacheOptions {
                    mode: Some("explicit".into()),
                    ttl: Some("30m".into()),
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(compacted.object.as_deref(), Some("response.compaction"));
    assert!(!compacted.output.is_empty());
    assert!(compacted.usage.is_some());
    let sent = h.fake.requests().last().unwrap().clone();
    assert_eq!(sent.path, "/v1/responses/compact");
    let body = sent.json.unwrap();
    assert_eq!(
        body["prompt_cache_options"],
        serde_json::json!({"mode": "explicit", "ttl": "30m"}),
        "{body}"
    );
    let missing = h
        .responses()
        .compact_response(by(ALICE, CompactResponseRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn lifecycle_rpcs_are_counted_and_logged_like_the_others() {
    let h = Harness::start().await;
    let _ = h
        .responses()
        .get_response(GetResponseRequest {
            response_id: "resp_x".into(),
            ..Default::default()
        })
        .await;
    let _ = conversations(&h)
        .create_conversation(CreateConversationRequest::default())
        .await
        .unwrap();
    let metrics = h.scrape().await;
    assert!(
        metrics.contains(r#"gateway_rpc_requests_total{method="GetResponse",code="NotFound"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gateway_rpc_requests_total{method="CreateConversation",code="Ok"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_demo_upstream_drops_a_stream_on_request_and_the_gateway_resumes_it() {
    // What the README's demo recipe does: `metadata.demo_drop_after` makes the demo upstream cut
    // the first connection; the caller still sees one unbroken stream.
    let h = two_callers().await;
    let stream = h
        .responses()
        .create_response(by(
            ALICE,
            CreateResponseRequest {
                background: Some(true),
                metadata: [("demo_drop_after".to_owned(), "5".to_owned())].into(),
                ..text("a job on a flaky network")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (messages, end) = drain(stream).await;
    assert!(end.is_none(), "{end:?}");
    assert_whole_stream(
        &messages
            .into_iter()
            .filter(|m| m.sequence_number.is_some())
            .collect::<Vec<_>>(),
    );
    assert!(
        h.fake
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path.contains("starting_after=4")),
        "the gateway resumed after event 4"
    );
}
