"""Guidance (everyone): imaging and referral by cause and tier, red flags, safety net, referral summary."""

import streamlit as st

from dashboard import referral, ui
from dashboard.guidance import guidance_cards, red_flag_checklist
from dashboard.labels import target_text
from dashboard.access import Page, may_see_panel

ctx = ui.guard(Page.GUIDANCE)
rules, path = ctx.rules, str(ctx.db.path)
st.title("Guidance")
st.caption(f"Straight from the rules in force (version {rules.version}).")

tab_causes, tab_flags, tab_summary = st.tabs(["Imaging and referral", "Red flags and safety net", "Referral summary"])

with tab_causes:
    st.markdown("#### By tier")
    for t in rules.tiers:
        st.markdown(f"{ui.tier_badge(rules, t.id)} &nbsp; respond within **{target_text(t.respond_within_minutes)}**: "
                    f"{t.meaning}", unsafe_allow_html=True)
    st.markdown("#### By suspected cause")
    cards = guidance_cards(rules)
    for left, right in zip(cards[0::2], cards[1::2] + [None]):
        cols = st.columns(2)
        for col, card in zip(cols, (left, right)):
            if card is None:
                continue
            with col.container(border=True):
                st.markdown(f"**{card['label']}** · suggested by {card['suggested_by']}")
                st.markdown("**Imaging:** " + ("; ".join(card["imaging"]) or "none"))
                if card["referral"]:
                    st.markdown("**Referral and action:** " + "; ".join(card["referral"]))
                if card["advice"]:
                    st.markdown("**Advice:** " + "; ".join(card["advice"]))
                st.caption("Sources: " + card["sources"])

with tab_flags:
    st.markdown("#### Red-flag checklist (ask every one)")
    for title, items in red_flag_checklist(rules).items():
        st.markdown(f"**{title}**\n" + "\n".join(f"- {x}" for x in items))
    st.markdown("#### Safety net for every patient")
    st.info(rules.guidance.safety_net.now)
    st.info(rules.guidance.safety_net.within_24_hours)

with tab_summary:
    if not ctx.user.sees_patient_data:
        st.caption(f"The {ctx.user.role.value} role does not see patient data.")
    else:
        report_id = st.text_input("Report id", value=st.session_state.get("selected_report", ""), max_chars=64,
                                  key="summary_report", placeholder="e.g. R-0005972")
        detail = ui.cached_report_detail(path, rules, rules.version, report_id.strip(), ctx.version) if report_id.strip() else None
        if detail is not None and not may_see_panel(ctx.user, detail["panel_id"]):
            detail = None  # a report of a panel this person may not see is as good as unknown
        if report_id.strip() and detail is None:
            st.warning("No such report.")
        if detail is not None:
            tl = ui.cached_timeline(path, rules, rules.version, detail["patient_id"], ctx.version, ctx.now.date())
            text = referral.referral_summary(rules, detail, tl.doses, tl.regimens, now=ctx.now, requester=ctx.user)
            st.caption("Plain text, to copy into the referral (the copy button is at the top right of the box).")
            st.code(text, language=None, wrap_lines=True)
            st.download_button("Download the request (text)", text, file_name=f"referral-{detail['report_id']}.txt",
                               mime="text/plain")
