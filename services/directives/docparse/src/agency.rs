//! Recognising agency names in running text, and the phrases that make an agency the
//! lead ("Giao X …", "Yêu cầu X …", "X chủ trì …") or a coordinating body
//! ("phối hợp với Y, Z").

use crate::fold::fold_text;

#[derive(Debug, Clone)]
pub(crate) struct Tok<'a> {
    pub text: &'a str,
    pub start: usize,
    pub end: usize,
    pub word: bool,
}

/// Words (letters, digits, `&`, `/`) and single punctuation characters.
pub(crate) fn tokenize(s: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut cur: Option<usize> = None;
    for (i, c) in s.char_indices() {
        let is_word = c.is_alphanumeric() || c == '&' || c == '/' || c == '_';
        if is_word {
            if cur.is_none() {
                cur = Some(i);
            }
            continue;
        }
        if let Some(st) = cur.take() {
            out.push(Tok {
                text: &s[st..i],
                start: st,
                end: i,
                word: true,
            });
        }
        if !c.is_whitespace() {
            out.push(Tok {
                text: &s[i..i + c.len_utf8()],
                start: i,
                end: i + c.len_utf8(),
                word: false,
            });
        }
    }
    if let Some(st) = cur {
        out.push(Tok {
            text: &s[st..],
            start: st,
            end: s.len(),
            word: true,
        });
    }
    out
}

fn f(t: &Tok) -> String {
    fold_text(t.text)
}

fn is_cap(t: &Tok) -> bool {
    t.word && t.text.chars().next().is_some_and(|c| c.is_uppercase())
}

fn is_lower(t: &Tok) -> bool {
    t.word && t.text.chars().next().is_some_and(|c| c.is_lowercase())
}

/// Agency heads (folded words). A head must be written with a capital first letter,
/// except inside a group introduced by "các" ("các sở, ban, ngành").
const HEADS: &[&[&str]] = &[
    &["uy", "ban", "nhan", "dan"],
    &["ubnd"],
    &["hoi", "dong", "nhan", "dan"],
    &["hdnd"],
    &["uy", "ban"],
    &["so"],
    &["ban"],
    &["bo", "chi", "huy"],
    &["bo"],
    &["van", "phong"],
    &["vpub"],
    &["cong", "an"],
    &["thanh", "tra"],
    &["kho", "bac"],
    &["bao", "hiem", "xa", "hoi"],
    &["bhxh"],
    &["tong", "cuc"],
    &["chi", "cuc"],
    &["cuc"],
    &["trung", "tam"],
    &["truong"],
    &["benh", "vien"],
    &["tong", "cong", "ty"],
    &["cong", "ty"],
    &["dai"],
    &["bao"],
    &["hoi"],
    &["lien", "doan"],
    &["tinh", "doan"],
    &["thanh", "doan"],
    &["mat", "tran"],
    &["ngan", "hang"],
    &["quy"],
    &["vien", "kiem", "sat"],
    &["hoc", "vien"],
    &["vien"],
    &["dai", "hoc"],
    &["canh", "sat"],
    &["phong"],
    &["chi", "nhanh"],
    &["kiem", "toan"],
    &["toa", "an"],
    &["chinh", "phu"],
    &["tinh", "uy"],
    &["thanh", "uy"],
    &["huyen", "uy"],
    &["quoc", "hoi"],
    &["hai", "quan"],
    &["buu", "dien"],
    &["dien", "luc"],
    &["bqlda"],
    &["bql"],
    &["vu"],
];

/// Heads that may stand alone (without a proper name after them).
const BARE_OK: &[&str] = &[
    "uy ban nhan dan",
    "ubnd",
    "hoi dong nhan dan",
    "hdnd",
    "cong an",
    "thanh tra",
    "kho bac",
    "bao hiem xa hoi",
    "bhxh",
    "chinh phu",
    "tinh uy",
    "thanh uy",
    "huyen uy",
    "quoc hoi",
    "tinh doan",
    "thanh doan",
    "van phong",
    "vpub",
];

/// Group heads allowed (lower case) after "các".
const GROUP_HEADS: &[&[&str]] = &[
    &["uy", "ban", "nhan", "dan"],
    &["ubnd"],
    &["co", "quan"],
    &["don", "vi"],
    &["dia", "phuong"],
    &["ban", "nganh"],
    &["so"],
    &["ban"],
    &["nganh"],
    &["bo"],
    &["to", "chuc"],
    &["doanh", "nghiep"],
    &["doan", "the"],
    &["hoi"],
    &["phong"],
    &["trung", "tam"],
    &["truong"],
    &["benh", "vien"],
    &["cong", "ty"],
    &["chu", "dau", "tu"],
    &["cong", "an"],
    &["luc", "luong"],
    &["huyen"],
    &["thi", "xa"],
    &["thanh", "pho"],
    &["quan"],
    &["xa"],
    &["phuong"],
    &["thi", "tran"],
    &["dac", "khu"],
];

/// Administrative levels and places that may follow a head ("UBND tỉnh", "Công an
/// phường, xã, đặc khu").
const ADMIN: &[&[&str]] = &[
    &["thanh", "pho"],
    &["thi", "xa"],
    &["thi", "tran"],
    &["dac", "khu"],
    &["cap", "tinh"],
    &["cap", "huyen"],
    &["cap", "xa"],
    &["trung", "uong"],
    &["tinh"],
    &["huyen"],
    &["quan"],
    &["xa"],
    &["phuong"],
];

/// Titles of heads of bodies, mapped to the body ("Giám đốc Sở X" → "Sở X").
const TITLES: &[&[&str]] = &[
    &["tong", "giam", "doc"],
    &["giam", "doc"],
    &["chu", "tich"],
    &["thu", "truong"],
    &["nguoi", "dung", "dau"],
    &["chanh", "van", "phong"],
    &["truong", "ban"],
    &["cuc", "truong"],
    &["chi", "cuc", "truong"],
    &["vien", "truong"],
    &["hieu", "truong"],
    &["chu", "nhiem"],
];

/// Lower-case words that end a name (verbs, prepositions, connectives), compared with
/// their diacritics ("đổi" in "Chuyển đổi số" is not "đối").
const STOP: &[&str] = &[
    "chủ",
    "phối",
    "khẩn",
    "tổng",
    "có",
    "tập",
    "theo",
    "thực",
    "tăng",
    "nghiên",
    "tham",
    "tổ",
    "rà",
    "chỉ",
    "báo",
    "triển",
    "kiểm",
    "đôn",
    "hướng",
    "cung",
    "trình",
    "để",
    "về",
    "trong",
    "tại",
    "đã",
    "sớm",
    "tiếp",
    "thường",
    "khảo",
    "đánh",
    "quản",
    "xây",
    "hoàn",
    "chịu",
    "phụ",
    "là",
    "được",
    "giải",
    "làm",
    "cập",
    "bố",
    "lập",
    "ban",
    "căn",
    "xem",
    "thống",
    "nắm",
    "kịp",
    "gửi",
    "tích",
    "đẩy",
    "đảm",
    "bảo",
    "chuẩn",
    "nâng",
    "thẩm",
    "lựa",
    "đồng",
    "thu",
    "phê",
    "hỗ",
    "vận",
    "giám",
    "với",
    "và",
    "của",
    "cho",
    "nhằm",
    "trước",
    "sau",
    "khi",
    "nếu",
    "thì",
    "mà",
    "này",
    "đó",
    "trên",
    "dưới",
    "từ",
    "đến",
    "vào",
    "ra",
    "các",
    "những",
    "một",
    "đối",
    "nhưng",
    "hoặc",
    "hay",
    "bằng",
    "trực",
    "ưu",
    "xử",
    "tuyên",
    "phổ",
    "quyết",
    "nghiêm",
    "kết",
    "ghi",
    "biểu",
    "chia",
    "mở",
    "tạo",
    "nhận",
    "đưa",
    "sử",
    "áp",
    "yêu",
    "phát",
    "dự",
    "ngày",
    "tiến",
    "lãnh",
    "giao",
    "cụ",
    "rất",
    "cùng",
    "điều",
    "sửa",
    "đề",
    "cấp",
    "đôn",
    "tích",
    "khuyến",
    "chấp",
    "phân",
    "cân",
    "bổ",
    "thanh",
    "lưu",
    "trả",
    "cử",
    "giúp",
    "tiến",
];

/// Lower-case words that may follow the first capitalised word of a name part even
/// though they are in [`STOP`] ("Ngoại giao", "Phát triển").
const STOP_EXCEPT_FIRST: &[&str] = &["giao", "triển", "tạo", "bảo", "thu", "chính"];

/// Capitalised words (compared in lower case, with diacritics) that cannot continue a
/// name once its first part was read ("Giao Công an Thành phố Chỉ đạo …").
const CAP_STOP: &[&str] = &[
    "khẩn",
    "chỉ",
    "phối",
    "theo",
    "chủ",
    "tập",
    "tiếp",
    "thường",
    "nghiên",
    "tham",
    "tổ",
    "rà",
    "thực",
    "triển",
    "kiểm",
    "đôn",
    "hướng",
    "cung",
    "trình",
    "để",
    "về",
    "trong",
    "tại",
    "đã",
    "sớm",
    "hoàn",
    "thời",
    "trên",
    "đồng",
    "giao",
    "yêu",
    "căn",
    "xét",
    "nay",
    "các",
    "những",
    "đối",
    "ngày",
    "số",
    "kính",
    "nơi",
    "lưu",
    "như",
    "tăng",
    "đẩy",
    "lập",
    "phân",
    "quản",
    "tổng",
    "gửi",
    "nghiêm",
    "bảo",
    "đảm",
    "xây",
    "cập",
    "báo",
    "tích",
    "chuẩn",
    "khuyến",
];

fn cap_stop(t: &Tok) -> bool {
    CAP_STOP.contains(&t.text.to_lowercase().as_str())
}

fn match_seq(toks: &[Tok], i: usize, seq: &[&str]) -> bool {
    if i + seq.len() > toks.len() {
        return false;
    }
    seq.iter()
        .enumerate()
        .all(|(k, w)| toks[i + k].word && f(&toks[i + k]) == *w)
}

fn match_any(toks: &[Tok], i: usize, list: &[&[&str]]) -> Option<usize> {
    list.iter()
        .filter(|seq| match_seq(toks, i, seq))
        .map(|seq| seq.len())
        .max()
}

/// A proper head at `i` (capitalised first word).
fn head_at(toks: &[Tok], i: usize) -> Option<usize> {
    if i >= toks.len() || !is_cap(&toks[i]) {
        return None;
    }
    match_any(toks, i, HEADS)
}

fn admin_at(toks: &[Tok], i: usize) -> Option<usize> {
    if i >= toks.len() {
        return None;
    }
    match_any(toks, i, ADMIN)
}

fn text_of(src: &str, toks: &[Tok], a: usize, b: usize) -> String {
    if a >= b || b > toks.len() {
        return String::new();
    }
    let s = &src[toks[a].start..toks[b - 1].end];
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parse one proper agency starting at token `i` (a head such as "Sở", "UBND"…).
/// Returns the end token (exclusive).
fn proper_agency(toks: &[Tok], i: usize) -> Option<usize> {
    let hl = head_at(toks, i)?;
    let head: Vec<String> = toks[i..i + hl].iter().map(f).collect();
    let head = head.join(" ");
    let mut j = i + hl;
    let mut components = 0usize;
    let mut has_admin = false;
    loop {
        if j >= toks.len() {
            break;
        }
        let t = &toks[j];
        // "UBND các huyện, thị xã, thành phố" / "Công an phường, xã, đặc khu"
        let cac = t.word && f(t) == "cac" && admin_at(toks, j + 1).is_some();
        if cac
            || (is_lower(t) && admin_at(toks, j).is_some())
            || (is_cap(t) && admin_at(toks, j).is_some() && f(t) == "thanh")
        {
            let mut k = if cac { j + 1 } else { j };
            let Some(al) = admin_at(toks, k) else { break };
            k += al;
            // a list of levels: "phường, xã, đặc khu"
            loop {
                if k + 1 < toks.len()
                    && (toks[k].text == "," || f(&toks[k]) == "va")
                    && let Some(al2) = admin_at(toks, k + 1)
                    && is_lower(&toks[k + 1])
                {
                    k += 1 + al2;
                    continue;
                }
                break;
            }
            // a place name after a single level: "tỉnh Quảng Ngãi"
            let mut p = k;
            let mut names = 0;
            while p < toks.len()
                && is_cap(&toks[p])
                && names < 4
                && head_at(toks, p).is_none()
                && !cap_stop(&toks[p])
            {
                p += 1;
                names += 1;
            }
            j = p;
            has_admin = true;
            // a name ends after its administrative level / place
            break;
        }
        if is_cap(t) {
            let ft = f(t);
            if components > 0
                && (cap_stop(t) || head_at(toks, j).is_some() && !is_nested_head(&head, toks, j))
            {
                break;
            }
            if components == 0
                && head_at(toks, j).is_some()
                && !is_nested_head(&head, toks, j)
                && !matches!(ft.as_str(), "chi" | "quan")
            {
                break;
            }
            // a component: capitalised word + up to 3 lower-case words
            let mut k = j + 1;
            let mut lowers = 0;
            while k < toks.len() && is_lower(&toks[k]) && lowers < 3 {
                let lk = toks[k].text.to_lowercase();
                let van_tai = lk == "vận" && toks.get(k + 1).is_some_and(|n| n.text == "tải");
                if STOP.contains(&lk.as_str())
                    && !van_tai
                    && !(lowers == 0 && STOP_EXCEPT_FIRST.contains(&lk.as_str()))
                {
                    break;
                }
                if admin_at(toks, k).is_some() {
                    break;
                }
                k += 1;
                lowers += 1;
            }
            j = k;
            components += 1;
            continue;
        }
        // connectors inside a name: "và", ",", "–", "-" followed by a capitalised
        // non-head word ("Sở Lao động – Thương binh và Xã hội")
        let connector = (t.word && f(t) == "va") || matches!(t.text, "," | "-" | "–" | "—");
        if connector
            && components > 0
            && j + 1 < toks.len()
            && is_cap(&toks[j + 1])
            && head_at(toks, j + 1).is_none()
            && !cap_stop(&toks[j + 1])
        {
            j += 1;
            continue;
        }
        break;
    }
    if components == 0 && !has_admin && !BARE_OK.contains(&head.as_str()) {
        return None;
    }
    Some(j)
}

/// "Văn phòng UBND tỉnh", "Văn phòng Chính phủ", "Ban Dân tộc tỉnh": some heads take
/// another body as their name.
fn is_nested_head(head: &str, toks: &[Tok], j: usize) -> bool {
    if !matches!(
        head,
        "van phong" | "thanh tra" | "cong an" | "bo chi huy" | "ban" | "vpub"
    ) {
        return false;
    }
    let Some(l) = head_at(toks, j) else {
        return false;
    };
    let inner: Vec<String> = toks[j..j + l].iter().map(f).collect();
    matches!(
        inner.join(" ").as_str(),
        "uy ban nhan dan"
            | "ubnd"
            | "hoi dong nhan dan"
            | "hdnd"
            | "chinh phu"
            | "tinh uy"
            | "thanh uy"
            | "huyen uy"
            | "quoc hoi"
    )
}

/// One element of a group after "các": head + a few qualifiers.
fn group_element(toks: &[Tok], i: usize) -> Option<usize> {
    if i >= toks.len() || !toks[i].word {
        return None;
    }
    let hl = match_any(toks, i, GROUP_HEADS)?;
    let mut j = i + hl;
    let mut q = 0;
    while j < toks.len() && q < 4 {
        let t = &toks[j];
        if !t.word {
            break;
        }
        let ft = f(t);
        let allowed_cap = matches!(
            ft.as_str(),
            "bo" | "chinh" | "phu" | "nha" | "nuoc" | "trung" | "uong" | "tinh" | "thanh" | "pho"
        );
        let lt = t.text.to_lowercase();
        let ok_lower = is_lower(t)
            && (!STOP.contains(&lt.as_str()) || matches!(lt.as_str(), "có" | "trực" | "cấp"));
        // "có liên quan" only
        if ft == "co" && !(j + 1 < toks.len() && f(&toks[j + 1]) == "lien") {
            break;
        }
        if ok_lower || (is_cap(t) && allowed_cap) {
            j += 1;
            q += 1;
        } else {
            break;
        }
    }
    Some(j)
}

fn title_at(toks: &[Tok], i: usize) -> Option<usize> {
    if i >= toks.len() || !toks[i].word {
        return None;
    }
    match_any(toks, i, TITLES)
}

/// Parse one agency (proper name, group after "các", or a title mapped to its body).
/// Returns (end token, name as written).
pub(crate) fn parse_agency(src: &str, toks: &[Tok], i: usize) -> Option<(usize, String)> {
    if i >= toks.len() || !toks[i].word {
        return None;
    }
    let mut j = i;
    let first = f(&toks[j]);
    let plural = first == "cac" || first == "toan";
    let plural_word = if plural { Some(toks[j].text) } else { None };
    if plural {
        j += 1;
        if j < toks.len() && f(&toks[j]) == "the" {
            j += 1;
        }
    }
    if j + 1 < toks.len() && f(&toks[j]) == "dong" && f(&toks[j + 1]) == "chi" {
        j += 2;
    }
    // "Bộ trưởng" alone stands for "Bộ"; "Bộ trưởng Bộ Tài chính" for "Bộ Tài chính"
    let mut elements: Vec<String> = Vec::new();
    let mut k = j;
    loop {
        let mut start = k;
        let mut bo_truong = false;
        if k + 1 < toks.len() && f(&toks[k]) == "bo" && f(&toks[k + 1]) == "truong" {
            bo_truong = true;
            start = k + 2;
        } else if let Some(tl) = title_at(toks, k) {
            start = k + tl;
        }
        let parsed = if let Some(e) = proper_agency(toks, start) {
            Some((start, e))
        } else if bo_truong {
            None
        } else if plural {
            group_element(toks, start).map(|e| (start, e))
        } else {
            None
        };
        match parsed {
            Some((s, e)) => {
                elements.push(text_of(src, toks, s, e));
                k = e;
            }
            None if bo_truong => {
                elements.push(toks[k].text.to_string());
                k = start;
            }
            None => break,
        }
        if !plural {
            break;
        }
        // a group goes on after "," or "và" with another group element or title
        if k + 1 < toks.len() && (toks[k].text == "," || f(&toks[k]) == "va") {
            let n = k + 1;
            let continues = (is_lower(&toks[n]) && match_any(toks, n, GROUP_HEADS).is_some())
                || (f(&toks[n]) == "bo"
                    && (n + 1 >= toks.len()
                        || !is_cap(&toks[n + 1])
                        || f(&toks[n + 1]) == "truong"))
                || title_at(toks, n).is_some();
            if continues {
                k = n;
                continue;
            }
        }
        break;
    }
    if elements.is_empty() {
        return None;
    }
    let name = match plural_word {
        Some(w) => format!("{w} {}", elements.join(", ")),
        None => elements.join(", "),
    };
    Some((k, name))
}

/// A list of agencies separated by "," or "và": "Sở A, Sở B và UBND các huyện".
pub(crate) fn parse_agency_list(src: &str, toks: &[Tok], i: usize) -> Option<(usize, Vec<String>)> {
    let (mut k, first) = parse_agency(src, toks, i)?;
    let mut out = vec![first];
    loop {
        if k < toks.len() && (toks[k].text == "," || f(&toks[k]) == "va") {
            let mut n = k + 1;
            if n < toks.len() && f(&toks[n]) == "va" {
                n += 1;
            }
            if let Some((e, name)) = parse_agency(src, toks, n) {
                out.push(name);
                k = e;
                continue;
            }
        }
        break;
    }
    Some((k, out))
}

/// Directive verbs and modal words that follow a lead agency.
const DIRECTIVE: &[&str] = &[
    "chu tri",
    "phoi hop",
    "khan truong",
    "tap trung",
    "co trach nhiem",
    "chiu trach nhiem",
    "tong hop",
    "tiep tuc",
    "chu dong",
    "tich cuc",
    "thuc hien",
    "trien khai",
    "to chuc",
    "ra soat",
    "nghien cuu",
    "tham muu",
    "xay dung",
    "hoan thanh",
    "hoan thien",
    "bao cao",
    "kiem tra",
    "don doc",
    "huong dan",
    "chi dao",
    "theo doi",
    "cung cap",
    "trinh",
    "de xuat",
    "bo tri",
    "can doi",
    "lap",
    "ban hanh",
    "som",
    "phai",
    "can",
    "tang cuong",
    "day manh",
    "day nhanh",
    "quan tam",
    "thuong xuyen",
    "nghiem tuc",
    "kip thoi",
    "lua chon",
    "xu ly",
    "giai quyet",
    "tham dinh",
    "phe duyet",
    "ho tro",
    "bao dam",
    "dam bao",
    "chuan bi",
    "cap nhat",
    "kiem soat",
    "giam sat",
    "tuyen truyen",
    "pho bien",
    "de cao",
    "truc tiep",
    "nang cao",
    "gui",
    "can cu",
    "uu tien",
    "quan ly",
    "van hanh",
    "khao sat",
    "danh gia",
    "xem xet",
    "phan cong",
    "tien hanh",
    "dieu chinh",
    "bo sung",
    "sua doi",
    "tao dieu kien",
    "chia se",
    "tong ket",
    "so ket",
    "lanh dao",
    "thong ke",
    "rat soat",
    "khan",
    "nghien",
    "chiu",
];
const NOT_DIRECTIVE: &[&str] = &["danh gia cao", "da ", "duoc ", "bao cao tinh hinh"];

/// Words that open an introductory clause ("Trên cơ sở đó, Bộ Tư pháp tổng hợp…").
const INTRO: &[&str] = &[
    "tren co so",
    "dong thoi",
    "can cu",
    "sau khi",
    "de ",
    "truong hop",
    "ngoai ra",
    "ben canh do",
    "theo do",
    "trong do",
    "rieng",
    "doi voi",
    "tuy theo",
    "khi ",
    "neu ",
    "trong qua trinh",
    "tu nay",
    "dinh ky",
    "hang thang",
    "hang nam",
    "hang quy",
];

fn directive_follows(src: &str, toks: &[Tok], mut k: usize) -> bool {
    // skip "theo chức năng, nhiệm vụ(, quyền hạn|thẩm quyền)* (được giao)?" and commas
    loop {
        if k < toks.len() && toks[k].text == "," {
            k += 1;
            continue;
        }
        if k + 2 < toks.len()
            && f(&toks[k]) == "theo"
            && f(&toks[k + 1]) == "chuc"
            && f(&toks[k + 2]) == "nang"
        {
            k += 3;
            while k < toks.len() {
                let ft = f(&toks[k]);
                if toks[k].text == ","
                    || matches!(
                        ft.as_str(),
                        "nhiem"
                            | "vu"
                            | "quyen"
                            | "han"
                            | "tham"
                            | "duoc"
                            | "giao"
                            | "va"
                            | "cua"
                            | "minh"
                    )
                {
                    // "thẩm" only as "thẩm quyền"
                    if ft == "tham" && !(k + 1 < toks.len() && f(&toks[k + 1]) == "quyen") {
                        break;
                    }
                    k += 1;
                } else {
                    break;
                }
            }
            continue;
        }
        break;
    }
    if k >= toks.len() {
        return false;
    }
    let rest = fold_text(&src[toks[k].start..]);
    if NOT_DIRECTIVE.iter().any(|p| rest.starts_with(p)) {
        return false;
    }
    DIRECTIVE.iter().any(|p| {
        rest.starts_with(p)
            && rest[p.len()..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric())
    })
}

/// True when the text opens with a directive verb ("Rà soát …", "Khẩn trương …").
pub(crate) fn starts_directive(text: &str) -> bool {
    let toks = tokenize(text);
    directive_follows(text, &toks, 0)
}

/// How a lead was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeadHow {
    Giao,
    Request,
    Subject,
}

/// Find the lead agencies named by one sentence: "giao X", "yêu cầu/đề nghị X …", or an
/// agency at the start of the sentence, of a ";" clause, or after an introductory
/// clause, followed by a directive verb.
pub(crate) fn find_leads(sentence: &str) -> Option<(Vec<String>, LeadHow)> {
    let toks = tokenize(sentence);
    // 1. giao X
    for (i, t) in toks.iter().enumerate() {
        if !t.word || f(t) != "giao" {
            continue;
        }
        let prev = if i > 0 {
            f(&toks[i - 1])
        } else {
            String::new()
        };
        if matches!(
            prev.as_str(),
            "duoc" | "da" | "ban" | "chuyen" | "duoc giao"
        ) {
            continue;
        }
        let mut n = i + 1;
        if n < toks.len() && f(&toks[n]) == "cho" {
            n += 1;
        }
        if let Some((_, leads)) = parse_agency_list(sentence, &toks, n) {
            return Some((leads, LeadHow::Giao));
        }
    }
    // 2. yêu cầu / đề nghị X + directive
    for i in 0..toks.len().saturating_sub(1) {
        let a = f(&toks[i]);
        let b = f(&toks[i + 1]);
        if !((a == "yeu" && b == "cau") || (a == "de" && b == "nghi")) {
            continue;
        }
        let prev = if i > 0 {
            f(&toks[i - 1])
        } else {
            String::new()
        };
        if matches!(prev.as_str(), "theo" | "co" | "cac" | "cua") {
            continue;
        }
        if let Some((e, leads)) = parse_agency_list(sentence, &toks, i + 2)
            && directive_follows(sentence, &toks, e)
        {
            return Some((leads, LeadHow::Request));
        }
    }
    // 3. a heading that is only an agency: "Sở Y tế:", "Đối với UBND các huyện:"
    {
        let mut st = 0;
        if toks.len() > 2 && f(&toks[0]) == "doi" && f(&toks[1]) == "voi" {
            st = 2;
        }
        if let Some((e, leads)) = parse_agency_list(sentence, &toks, st)
            && toks[e..].iter().all(|t| matches!(t.text, ":" | "." | ";"))
        {
            return Some((leads, LeadHow::Subject));
        }
    }
    // 4. subject at a clause start
    let mut clause_start = 0usize;
    let mut i = 0usize;
    while i < toks.len() {
        let at_clause_start = i == clause_start;
        let after_comma_in_intro = i > 0 && toks[i - 1].text == "," && {
            let clause = fold_text(&sentence[toks[clause_start].start..]);
            INTRO.iter().any(|p| clause.starts_with(p))
        };
        if (at_clause_start || after_comma_in_intro)
            && toks[i].word
            && let Some((e, leads)) = parse_agency_list(sentence, &toks, i)
            && directive_follows(sentence, &toks, e)
        {
            return Some((leads, LeadHow::Subject));
        }
        if matches!(toks[i].text, ";" | ":") {
            clause_start = i + 1;
        }
        i += 1;
    }
    None
}

/// Coordinating agencies: "phối hợp (với) Y, Z", "cùng với Y".
pub(crate) fn find_coordinating(text: &str) -> Vec<String> {
    let toks = tokenize(text);
    let mut out: Vec<String> = Vec::new();
    for i in 0..toks.len().saturating_sub(1) {
        if !(f(&toks[i]) == "phoi" && f(&toks[i + 1]) == "hop") {
            continue;
        }
        let mut n = i + 2;
        if n < toks.len() && (f(&toks[n]) == "voi" || f(&toks[n]) == "cung") {
            n += 1;
        }
        if let Some((_, list)) = parse_agency_list(text, &toks, n) {
            for a in list {
                if !out
                    .iter()
                    .any(|o| crate::fold::fold_name(o) == crate::fold::fold_name(&a))
                {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// All agency mentions followed by "đã" (the subject of a report sentence).
pub(crate) fn reporting_subject(text: &str) -> Option<String> {
    let toks = tokenize(text);
    for i in 0..toks.len() {
        if let Some((e, name)) = parse_agency(text, &toks, i)
            && e < toks.len()
            && f(&toks[e]) == "da"
            && !name.to_lowercase().starts_with("các")
        {
            return Some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leads(s: &str) -> Vec<String> {
        find_leads(s).map(|(l, _)| l).unwrap_or_default()
    }

    #[test]
    fn giao_chu_tri_phoi_hop() {
        let s = "Giao Sở Tài chính chủ trì, phối hợp với Sở Lao động – Thương binh và Xã hội, các cơ quan, đơn vị liên quan nghiên cứu, tham mưu.";
        assert_eq!(leads(s), vec!["Sở Tài chính"]);
        assert_eq!(
            find_coordinating(s),
            vec![
                "Sở Lao động – Thương binh và Xã hội",
                "các cơ quan, đơn vị liên quan"
            ]
        );
    }

    #[test]
    fn several_leads() {
        let s = "giao Sở Kế hoạch và Đầu tư, Sở Xây dựng theo chức năng nhiệm vụ được giao chủ trì, nghiên cứu";
        assert_eq!(leads(s), vec!["Sở Kế hoạch và Đầu tư", "Sở Xây dựng"]);
        let s = "Yêu cầu các sở, ban, ngành, UBND các huyện, thị xã, thành phố tăng cường đẩy nhanh tiến độ";
        assert_eq!(
            leads(s),
            vec!["các sở, ban, ngành", "UBND các huyện, thị xã, thành phố"]
        );
    }

    #[test]
    fn subjects_and_titles() {
        assert_eq!(
            leads("Trên cơ sở đó, Bộ Tư pháp tổng hợp, báo cáo Thủ tướng"),
            vec!["Bộ Tư pháp"]
        );
        assert_eq!(
            leads(
                "Trên cơ sở đề nghị của các Bộ, cơ quan liên quan, Bộ Tài chính khẩn trương rà soát"
            ),
            vec!["Bộ Tài chính"]
        );
        assert_eq!(
            leads(
                "Các đồng chí Bộ trưởng, Thủ trưởng cơ quan ngang Bộ, cơ quan thuộc Chính phủ theo chức năng, nhiệm vụ, thẩm quyền đề cao trách nhiệm"
            ),
            vec!["Các Bộ, cơ quan ngang Bộ, cơ quan thuộc Chính phủ"]
        );
        assert_eq!(leads("Giám đốc Sở Y tế chỉ đạo rà soát"), vec!["Sở Y tế"]);
        assert!(leads("UBND tỉnh ghi nhận, biểu dương").is_empty());
        assert!(leads("Trong 8 tháng đầu năm 2024, Sở Lao động – Thương binh và Xã hội đã cơ bản hoàn thành").is_empty());
        assert!(leads("Nghiêm túc thực hiện các nhiệm vụ đã được Tỉnh ủy, UBND tỉnh, Chủ tịch UBND tỉnh chỉ đạo").is_empty());
        assert!(leads("do Sở Nông nghiệp và Môi trường cung cấp").is_empty());
        assert!(
            leads("Các Báo cáo trên gửi Bộ Tư pháp trước ngày 05 tháng 12 năm 2025.").is_empty()
        );
    }

    #[test]
    fn heading_forms() {
        assert_eq!(
            leads("Giao Sở Nông nghiệp và Môi trường Khẩn trương chia sẻ"),
            vec!["Sở Nông nghiệp và Môi trường"]
        );
        assert_eq!(
            leads("Giao Công an Thành phố Chỉ đạo Công an các phường"),
            vec!["Công an Thành phố"]
        );
        assert_eq!(
            leads("Giao Ủy ban nhân dân các phường, xã, đặc khu"),
            vec!["Ủy ban nhân dân các phường, xã, đặc khu"]
        );
        assert_eq!(
            leads(
                "Để thực hiện tốt các nhiệm vụ giúp UBND tỉnh quản lý nhà nước, Sở Lao động - Thương binh và Xã hội tập trung thực hiện một số nhiệm vụ cụ thể sau:"
            ),
            vec!["Sở Lao động - Thương binh và Xã hội"]
        );
        assert_eq!(leads("Sở LĐTB&XH chủ trì"), vec!["Sở LĐTB&XH"]);
        assert_eq!(
            leads("Sở Giáo dục và Đào tạo thực hiện"),
            vec!["Sở Giáo dục và Đào tạo"]
        );
        assert_eq!(
            leads("Sở Giao thông vận tải tổ chức"),
            vec!["Sở Giao thông vận tải"]
        );
        assert_eq!(leads("Bộ Ngoại giao chủ trì"), vec!["Bộ Ngoại giao"]);
        assert_eq!(leads("Sở Y tế:"), vec!["Sở Y tế"]);
        assert_eq!(
            leads("Đối với UBND các huyện, thị xã, thành phố:"),
            vec!["UBND các huyện, thị xã, thành phố"]
        );
        assert_eq!(
            leads("Sở Nông nghiệp và Phát triển nông thôn chủ trì"),
            vec!["Sở Nông nghiệp và Phát triển nông thôn"]
        );
        assert_eq!(
            leads("Văn phòng UBND tỉnh theo dõi"),
            vec!["Văn phòng UBND tỉnh"]
        );
    }

    #[test]
    fn coordinating_lists() {
        let s = "Giao Sở Xây dựng chủ trì, phối hợp với Trung tâm Chuyển đổi số Thành phố, Công an Thành phố, Sở Nông nghiệp và Môi trường, Ủy ban nhân dân các phường, xã, đặc khu cùng các đơn vị có liên quan, tổ chức khảo sát";
        assert_eq!(
            find_coordinating(s),
            vec![
                "Trung tâm Chuyển đổi số Thành phố",
                "Công an Thành phố",
                "Sở Nông nghiệp và Môi trường",
                "Ủy ban nhân dân các phường, xã, đặc khu"
            ]
        );
        assert_eq!(
            find_coordinating(
                "Sở Xây dựng chủ trì, phối hợp Trung tâm Chuyển đổi số Thành phố xây dựng"
            ),
            vec!["Trung tâm Chuyển đổi số Thành phố"]
        );
        assert_eq!(
            find_coordinating("đồng thời, phối hợp với Công an phường, xã, đặc khu rà soát"),
            vec!["Công an phường, xã, đặc khu"]
        );
        assert!(find_coordinating("Phối hợp thực hiện công tác rà soát").is_empty());
    }
}
